"""People log in to the cluster edition through Keycloak's real login form; services trust it."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from infra_fixtures import KeycloakRealm
from ingest.ingest_support import synthetic_instance, uids
from oidc_login import Pkce, authorization_url, log_in, log_in_with_pkce

from sonobridge.common.auth import LocalIssuer, TokenVerifier
from sonobridge.node.cluster import ClusterEdition, Infra
from sonobridge.node.consortium import DEMO_PASSWORD, demo_consortium

pytestmark = [pytest.mark.infra, pytest.mark.keycloak]

REDIRECT = "http://127.0.0.1:9/callback"
PROBLEM = "application/problem+json"


def keycloak_login(
    realm: KeycloakRealm, user: str, client_id: str = "reading-station"
) -> dict[str, str]:
    """Log `user` in through Keycloak's login page with code + PKCE; return the token answer."""
    with httpx.Client(timeout=60) as client:
        return log_in_with_pkce(
            client,
            realm.discovery(),
            client_id=client_id,
            redirect_uri=REDIRECT,
            user=user,
            password=DEMO_PASSWORD,
        )


@pytest.fixture(scope="module")
def cluster(
    keycloak: KeycloakRealm,
    kafka_bootstrap: str,
    minio_endpoint: object,
    postgres_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ClusterEdition]:
    """The cluster edition's four service processes, trusting the Keycloak realm's keys."""
    tmp: Path = tmp_path_factory.mktemp("keycloak-cluster")
    minio = minio_endpoint
    infra = Infra(
        kafka_bootstrap,
        minio.endpoint,  # type: ignore[attr-defined]
        minio.access_key,  # type: ignore[attr-defined]
        minio.secret_key,  # type: ignore[attr-defined]
        postgres_url,
    )
    edition = ClusterEdition.ephemeral(tmp, infra, demo_consortium(), deployment=f"kc{os.getpid()}")
    edition.extra_env = {"AUTH__JWKS_URL": keycloak.jwks_url, "AUTH__ISSUER": keycloak.issuer}
    edition.prepare(fresh=True)
    try:
        edition.start()
        yield edition
    finally:
        edition.stop()
        edition.drop_databases()


def test_keycloak_tokens_carry_the_contract_claims(keycloak: KeycloakRealm) -> None:
    tokens = keycloak_login(keycloak, "dr-zhang")
    verifier = TokenVerifier(
        audience="sonobridge", issuer=keycloak.issuer, jwks_url=keycloak.jwks_url
    )
    principal = verifier.verify(tokens["access_token"])
    assert principal.user == "dr-zhang"
    assert principal.roles == frozenset({"expert"})
    assert (principal.institution, principal.consortium) == ("county-hospital", "qingshan-county")
    assert principal.claims["preferred_username"] == "dr-zhang"
    assert principal.claims["azp"] == "reading-station"
    assert "refresh_token" in tokens and "id_token" in tokens


def test_a_township_operator_gets_the_operator_role_only(keycloak: KeycloakRealm) -> None:
    tokens = keycloak_login(keycloak, "nurse-east", client_id="township-app")
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert sorted(set(claims["roles"]) & {"operator", "expert", "admin", "physician"}) == [
        "operator"
    ]
    assert claims["institution"] == "township-east"


def test_keycloak_refuses_a_code_without_pkce_and_a_wrong_password(
    keycloak: KeycloakRealm,
) -> None:
    discovery = keycloak.discovery()
    with httpx.Client(timeout=60) as client:
        no_pkce = log_in(
            client,
            authorization_url(discovery, "ohif", REDIRECT, None),
            REDIRECT,
            "dr-wang",
            DEMO_PASSWORD,
        )
        assert no_pkce.code is None and no_pkce.error == "invalid_request"
        wrong = log_in(
            client,
            authorization_url(discovery, "ohif", REDIRECT, Pkce.new()),
            REDIRECT,
            "dr-wang",
            "not-the-password",
        )
    assert wrong.code is None and wrong.last_response.status_code == 200
    assert "Invalid username or password" in wrong.last_response.text
    # One slip does not lock the account, and the right password clears Keycloak's count.
    assert keycloak_login(keycloak, "dr-wang", client_id="ohif")["access_token"]


def _stowed_study(ingest: str, token: str) -> str:
    data = synthetic_instance()
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    stored = httpx.post(
        f"{ingest}/dicomweb/studies",
        content=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        },
        timeout=60,
    )
    assert stored.status_code == 200, stored.text
    return uids(data)[0]


def _studies(ingest: str, token: str) -> set[str]:
    answer = httpx.get(
        f"{ingest}/dicomweb/studies",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/dicom+json"},
        timeout=30,
    )
    assert answer.status_code in (200, 204), answer.text
    if answer.status_code == 204 or not answer.content:
        return set()
    return {study["0020000D"]["Value"][0] for study in answer.json()}


def test_cluster_services_accept_keycloak_logins_and_scope_by_institution(
    keycloak: KeycloakRealm, cluster: ClusterEdition
) -> None:
    urls = cluster.urls()
    nurse = keycloak_login(keycloak, "nurse-east", client_id="township-app")["access_token"]
    other = keycloak_login(keycloak, "nurse-west", client_id="township-app")["access_token"]
    expert = keycloak_login(keycloak, "dr-zhang")["access_token"]
    admin = keycloak_login(keycloak, "county-admin")["access_token"]

    study = _stowed_study(urls["ingest"], nurse)
    assert study in _studies(urls["ingest"], nurse)
    assert study in _studies(urls["ingest"], expert)
    assert study not in _studies(urls["ingest"], other)

    with httpx.Client(timeout=30) as client:
        shifts = {"shifts": []}
        roster = f"{urls['reporting']}/v1/rosters/county-vascular"
        assert client.put(
            roster, json=shifts, headers={"Authorization": f"Bearer {admin}"}
        ).is_success
        refused = client.put(roster, json=shifts, headers={"Authorization": f"Bearer {nurse}"})
        assert refused.status_code == 403
        listed = client.get(
            f"{urls['reporting']}/v1/worklists", headers={"Authorization": f"Bearer {expert}"}
        )
        assert listed.status_code == 200, listed.text


def test_tokens_from_another_realm_or_issuer_are_refused_with_problem_json(
    keycloak: KeycloakRealm, cluster: ClusterEdition
) -> None:
    foreign = LocalIssuer(keycloak.issuer).issue("dr-zhang", ["expert"], "county-hospital")
    for token in (keycloak.master_admin_token(), foreign):
        for service in ("ingest", "reporting"):
            answer = httpx.get(
                f"{cluster.urls()[service]}/v1/worklists"
                if service == "reporting"
                else f"{cluster.urls()[service]}/dicomweb/studies",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert answer.status_code == 401, answer.text
            assert answer.headers["content-type"].startswith(PROBLEM)


def test_a_browser_origin_is_refused_until_allowed_for_its_client(
    keycloak: KeycloakRealm,
) -> None:
    # The test Keycloak keeps its database between sessions: a port no earlier run allowed.
    origin = f"http://127.0.0.1:{20000 + secrets.randbelow(40000)}"
    form = {
        "grant_type": "authorization_code",
        "client_id": "ohif",
        "code": "not-a-code",
        "redirect_uri": f"{origin}/callback",
    }
    token_url = keycloak.discovery()["token_endpoint"]
    before = httpx.post(token_url, data=form, headers={"Origin": origin}, timeout=60)
    keycloak.allow_origin("ohif", origin)
    after = httpx.post(token_url, data=form, headers={"Origin": origin}, timeout=60)
    assert before.status_code == 403 and "access-control-allow-origin" not in before.headers
    assert after.headers["access-control-allow-origin"] == origin
    assert after.json()["error"] == "invalid_grant"


def test_the_machine_client_gets_a_service_token_the_services_accept(
    keycloak: KeycloakRealm, cluster: ClusterEdition
) -> None:
    secret = keycloak.client_secret("sonobridge-service")
    answer = httpx.post(
        keycloak.discovery()["token_endpoint"],
        data={"grant_type": "client_credentials"},
        auth=("sonobridge-service", secret),
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["roles"] == ["service"] and claims["azp"] == "sonobridge-service"
    listed = httpx.get(
        f"{cluster.urls()['reporting']}/v1/worklists",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert listed.status_code == 200, listed.text
