"""The Keycloak realm export holds no people; the demo users file is generated and current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sonobridge.common.auth import ROLES
from sonobridge.node.cli import main

KEYCLOAK = Path(__file__).resolve().parents[2] / "deploy" / "keycloak"


def _realm() -> dict:
    return json.loads((KEYCLOAK / "sonobridge-realm.json").read_text(encoding="utf-8"))


def test_the_production_realm_has_no_users_or_secrets() -> None:
    realm = _realm()
    assert "users" not in realm
    assert all("secret" not in client for client in realm["clients"])
    assert realm["bruteForceProtected"] is True and realm["registrationAllowed"] is False


def test_the_realm_declares_the_contract_roles_clients_and_claims() -> None:
    realm = _realm()
    assert {r["name"] for r in realm["roles"]["realm"]} == set(ROLES)
    clients = {c["clientId"]: c for c in realm["clients"]}
    for name in ("reading-station", "ohif", "township-app"):
        client = clients[name]
        assert client["publicClient"] and client["standardFlowEnabled"]
        assert not client["directAccessGrantsEnabled"] and not client["implicitFlowEnabled"]
        assert client["attributes"]["pkce.code.challenge.method"] == "S256"
        claims = {m["config"].get("claim.name") for m in client["protocolMappers"]}
        assert {"sub", "roles", "institution", "consortium"} <= claims
        audiences = [m["config"].get("included.custom.audience") for m in client["protocolMappers"]]
        assert "sonobridge" in audiences
    assert clients["sonobridge-service"]["serviceAccountsEnabled"] is True
    profile = realm["components"]["org.keycloak.userprofile.UserProfileProvider"][0]
    declared = json.loads(profile["config"]["kc.user.profile.config"][0])["attributes"]
    assert {"institution", "consortium"} <= {a["name"] for a in declared}


def test_the_demo_users_file_is_what_the_command_writes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["users", "export-keycloak", "--demo"])
    written = json.loads(capsys.readouterr().out)
    committed = json.loads(
        (KEYCLOAK / "demo" / "sonobridge-users-0.json").read_text(encoding="utf-8")
    )
    assert written == committed, "regenerate: uv run sonobridge users export-keycloak --demo"


def test_exported_people_have_no_password_and_must_choose_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sonobridge.node.consortium import demo_consortium

    path = tmp_path / "consortium.json"
    path.write_text(demo_consortium().to_json(), encoding="utf-8")
    main(["users", "export-keycloak", "--consortium-file", str(path)])
    users = json.loads(capsys.readouterr().out)["users"]
    assert users and all("credentials" not in u for u in users)
    assert all(u["requiredActions"] == ["UPDATE_PASSWORD"] for u in users)
    nurse = next(u for u in users if u["username"] == "nurse-east")
    assert nurse["realmRoles"] == ["operator"]
    assert nurse["attributes"]["institution"] == ["township-east"]
