"""People log in to the single node at its OpenID provider: code + PKCE, refresh, logout."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from oidc_login import Pkce, authorization_url, exchange_code, log_in, log_in_with_pkce

from sonobridge.common.problems import Unauthenticated
from sonobridge.node.consortium import demo_consortium
from sonobridge.node.edition import NodePorts, SingleNode
from sonobridge.node.identity.accounts import with_password
from sonobridge.node.identity.server import add_machine_client

PASSWORDS = {"dr-zhang": "zhang-reads-vessels", "nurse-east": "east-scans-necks"}
REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNode]:
    data_dir: Path = tmp_path_factory.mktemp("login-node")
    consortium = demo_consortium()
    for user, password in PASSWORDS.items():
        consortium = with_password(consortium, user, password)
    (data_dir / "consortium.json").write_text(consortium.to_json(), encoding="utf-8")
    (data_dir / "institutions.json").write_text(
        json.dumps(consortium.institution_registry()), encoding="utf-8"
    )
    add_machine_client(data_dir, "pacs-bridge", "bridge-secret-0123456789", ["service"], None)
    single = SingleNode(
        data_dir,
        ports=NodePorts.ephemeral(),
        services=("reporting",),
        extra_settings={
            "common": {"access": {"institutions_file": str(data_dir / "institutions.json")}}
        },
    )
    single.start()
    yield single
    single.stop()


@pytest.fixture
def discovery(node: SingleNode) -> dict[str, object]:
    url = f"{node.login.issuer_url}/.well-known/openid-configuration"
    found: dict[str, object] = httpx.get(url, timeout=10).json()
    return found


def _logged_in(
    node: SingleNode, discovery: dict[str, object], user: str, client: httpx.Client
) -> dict[str, str]:
    return log_in_with_pkce(
        client,
        discovery,
        client_id="reading-station",
        redirect_uri=REDIRECT,
        user=user,
        password=PASSWORDS[user],
        nonce="n-1",
    )


def test_discovery_names_every_endpoint_on_the_issuer(
    node: SingleNode, discovery: dict[str, object]
) -> None:
    issuer = node.login.issuer_url
    assert discovery["issuer"] == issuer
    for endpoint in ("authorization", "token", "userinfo", "end_session"):
        assert str(discovery[f"{endpoint}_endpoint"]).startswith(issuer)
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    keys = httpx.get(str(discovery["jwks_uri"]), timeout=10).json()["keys"]
    assert [k["kid"] for k in keys] == [node.issuer.kid]


def test_an_expert_logs_in_with_pkce_and_reporting_accepts_the_token(
    node: SingleNode, discovery: dict[str, object]
) -> None:
    with httpx.Client(timeout=30) as client:
        tokens = _logged_in(node, discovery, "dr-zhang", client)
        principal = node.login.verifier.verify(tokens["access_token"])
        assert principal.user == "dr-zhang"
        assert principal.roles == frozenset({"expert"})
        assert principal.institution == "county-hospital"
        assert principal.consortium == "qingshan-county"
        assert principal.claims["preferred_username"] == "dr-zhang"
        assert "sonobridge" in principal.claims["aud"]
        id_token = jwt.decode(
            tokens["id_token"],
            jwt.PyJWKSet.from_dict(node.issuer.jwks()).keys[0].key,
            algorithms=["RS256"],
            audience="reading-station",
            issuer=node.login.issuer_url,
        )
        assert id_token["nonce"] == "n-1" and id_token["sub"] == "dr-zhang"
        worklists = client.get(
            f"{node.urls()['reporting']}/v1/worklists",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
        assert worklists.status_code == 200, worklists.text
        me = client.get(
            str(discovery["userinfo_endpoint"]),
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
        assert me.json()["institution"] == "county-hospital"
        other = _logged_in(node, discovery, "nurse-east", client)["access_token"]
        ambiguous = client.get(
            str(discovery["userinfo_endpoint"]),
            headers=[
                ("Authorization", f"Bearer {tokens['access_token']}"),
                ("Authorization", f"Bearer {other}"),
            ],
        )
        assert ambiguous.status_code == 401
        assert ambiguous.json()["error_description"] == "send one authorization header, not 2"


def test_a_township_operator_gets_the_operator_role_only(
    node: SingleNode, discovery: dict[str, object]
) -> None:
    with httpx.Client(timeout=30) as client:
        tokens = _logged_in(node, discovery, "nurse-east", client)
        principal = node.login.verifier.verify(tokens["access_token"])
        assert principal.roles == frozenset({"operator"})
        assert principal.institution == "township-east"
        # Rosters are county IT's: an operator's token is refused by the service's policy.
        roster = client.put(
            f"{node.urls()['reporting']}/v1/rosters/county-vascular",
            json={"shifts": []},
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
    assert roster.status_code == 403, roster.text
    assert roster.headers["content-type"].startswith("application/problem+json")


def test_refresh_rotates_and_logout_revokes(node: SingleNode, discovery: dict[str, object]) -> None:
    token_url = str(discovery["token_endpoint"])
    with httpx.Client(timeout=30) as client:
        tokens = _logged_in(node, discovery, "dr-zhang", client)
        refresh = {"grant_type": "refresh_token", "client_id": "reading-station"}
        renewed = client.post(token_url, data=refresh | {"refresh_token": tokens["refresh_token"]})
        assert renewed.status_code == 200, renewed.text
        fresh = renewed.json()
        assert node.login.verifier.verify(fresh["access_token"]).user == "dr-zhang"
        reused = client.post(token_url, data=refresh | {"refresh_token": tokens["refresh_token"]})
        assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"

        logout = client.get(
            str(discovery["end_session_endpoint"]),
            params={
                "id_token_hint": tokens["id_token"],
                "post_logout_redirect_uri": "http://127.0.0.1:9/signed-out",
                "state": "bye",
            },
        )
        assert logout.status_code == 302
        assert logout.headers["location"] == "http://127.0.0.1:9/signed-out?state=bye"
        after = client.post(token_url, data=refresh | {"refresh_token": fresh["refresh_token"]})
        assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
        # The login session is gone too: the next authorization shows the form again.
        again = client.get(authorization_url(discovery, "reading-station", REDIRECT, Pkce.new()))
        assert again.status_code == 200 and 'type="password"' in again.text


def test_a_code_without_the_right_pkce_verifier_is_refused(
    node: SingleNode, discovery: dict[str, object]
) -> None:
    with httpx.Client(timeout=30) as client:
        pkce = Pkce.new()
        url = authorization_url(discovery, "reading-station", REDIRECT, pkce)
        landed = log_in(client, url, REDIRECT, "dr-zhang", PASSWORDS["dr-zhang"])
        assert landed.code is not None
        common = {"client_id": "reading-station", "code": landed.code, "redirect_uri": REDIRECT}
        missing = exchange_code(client, discovery, **common, verifier=None)
        wrong = exchange_code(client, discovery, **common, verifier=Pkce.new().verifier)
        right = exchange_code(client, discovery, **common, verifier=pkce.verifier)
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    assert right.status_code == 200


def test_an_authorization_request_without_pkce_is_sent_back_with_an_error(
    node: SingleNode, discovery: dict[str, object]
) -> None:
    with httpx.Client(timeout=30) as client:
        answer = client.get(authorization_url(discovery, "ohif", REDIRECT, None))
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(f"{REDIRECT}?error=invalid_request")


def test_an_unknown_client_or_foreign_redirect_gets_an_oauth_error_not_a_page(
    node: SingleNode, discovery: dict[str, object]
) -> None:
    with httpx.Client(timeout=30) as client:
        unknown = client.get(authorization_url(discovery, "nobody", REDIRECT, Pkce.new()))
        foreign = client.get(
            authorization_url(discovery, "ohif", "https://evil.example/cb", Pkce.new())
        )
        garbage = client.post(str(discovery["token_endpoint"]), content=b"\xff\xfe=%%%")
    assert unknown.status_code in (400, 401) and unknown.json()["error"] == "invalid_client"
    assert foreign.status_code == 400 and foreign.json()["error"] == "invalid_request"
    assert garbage.status_code == 400 and garbage.json()["error"] == "invalid_request"


def test_wrong_passwords_are_refused_then_throttled(
    node: SingleNode, discovery: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sonobridge.identity.audit")
    with httpx.Client(timeout=30) as client:
        url = authorization_url(discovery, "township-app", REDIRECT, Pkce.new())
        statuses = []
        for _ in range(6):
            landed = log_in(client, url, REDIRECT, "nurse-east", "not-her-password")
            assert landed.code is None
            statuses.append(landed.last_response.status_code)
        chinese = client.get(url + "&ui_locales=zh-CN")
    assert statuses == [401] * 5 + [429]
    assert "密码" in chinese.text and 'lang="zh-CN"' in chinese.text
    assert "frame-ancestors 'none'" in chinese.headers["content-security-policy"]
    assert not any(tag in chinese.text for tag in ("<script", "<link", "<img", "src="))
    audited = [
        (r.__dict__.get("user"), r.__dict__.get("outcome"))
        for r in caplog.records
        if r.name == "sonobridge.identity.audit"
    ]
    assert audited == [("nurse-east", "rejected")] * 5 + [("nurse-east", "throttled")]
    assert not any("not-her-password" in r.getMessage() for r in caplog.records)


def test_a_machine_client_gets_a_service_token_by_client_credentials(
    node: SingleNode, discovery: dict[str, object]
) -> None:
    basic = base64.b64encode(b"pacs-bridge:bridge-secret-0123456789").decode()
    with httpx.Client(timeout=30) as client:
        good = client.post(
            str(discovery["token_endpoint"]),
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )
        bad = client.post(
            str(discovery["token_endpoint"]),
            data={
                "grant_type": "client_credentials",
                "client_id": "pacs-bridge",
                "client_secret": "guess-guess-guess",
            },
        )
    assert good.status_code == 200, good.text
    assert "refresh_token" not in good.json()
    principal = node.login.verifier.verify(good.json()["access_token"])
    assert (principal.user, principal.roles) == ("pacs-bridge", frozenset({"service"}))
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


def test_a_token_from_sonobridge_token_is_still_accepted(node: SingleNode) -> None:
    token = node.issuer.issue("ci-bot", ["service"])
    assert node.login.verifier.verify(token).user == "ci-bot"
    with pytest.raises(Unauthenticated):
        node.login.verifier.verify(node.issuer.issue("x", ["admin"], audience="elsewhere"))


def test_browser_apps_on_loopback_may_call_the_token_endpoint_but_other_sites_may_not(
    discovery: dict[str, object],
) -> None:
    token_url = str(discovery["token_endpoint"])
    preflight = {"Access-Control-Request-Method": "POST"}
    with httpx.Client(timeout=30) as client:
        local = client.options(token_url, headers={**preflight, "Origin": "http://127.0.0.1:3000"})
        foreign = client.options(token_url, headers={**preflight, "Origin": "https://evil.example"})
    assert local.headers["access-control-allow-origin"] == "http://127.0.0.1:3000"
    assert "access-control-allow-origin" not in foreign.headers


HOSTILE = [
    ("GET", "/authorize", {}, None),
    ("GET", "/authorize?response_type=token&client_id=ohif", {}, None),
    ("GET", "/authorize?response_type=code&client_id=ohif&redirect_uri=%ff%fe", {}, None),
    ("GET", "/authorize?client_id=ohif&client_id=reading-station&response_type=code", {}, None),
    ("POST", "/authorize", {"Content-Type": "application/x-www-form-urlencoded"}, b"\xff\x00=%"),
    ("POST", "/authorize", {}, b"username=a&password=b&csrf=c"),
    ("POST", "/token", {"Content-Type": "application/json"}, b'{"grant_type": "password"}'),
    ("POST", "/token", {}, b"grant_type=authorization_code&client_id=ohif&code=" + b"A" * 5000),
    ("POST", "/token", {}, b"grant_type=refresh_token&client_id=ohif&refresh_token=x"),
    ("POST", "/token", {"Authorization": "Basic !!!"}, b"grant_type=client_credentials"),
    ("POST", "/token", {"Authorization": "Basic /w=="}, b"grant_type=client_credentials"),
    ("POST", "/token", {"Authorization": "Basic Og=="}, b"grant_type=client_credentials"),
    ("POST", "/token", {}, b"grant_type=client_credentials&client_id=ohif&client_secret=x"),
    ("POST", "/authorize", {}, "username=张&password=密码&client_id=ohif".encode()),
    ("GET", "/userinfo", {"Authorization": "Bearer a.b.c"}, None),
    (
        "GET",
        "/logout?id_token_hint=not.a.jwt&post_logout_redirect_uri=javascript:alert(1)",
        {},
        None,
    ),
    ("GET", "/logout?client_id=ohif&post_logout_redirect_uri=http://127.0.0.1:9/x", {}, None),
]


@pytest.mark.parametrize(("method", "path", "headers", "body"), HOSTILE)
def test_hostile_requests_get_an_oauth_error_or_a_page_never_a_5xx(
    node: SingleNode, method: str, path: str, headers: dict[str, str], body: bytes | None
) -> None:
    answer = httpx.request(
        method, f"{node.login.issuer_url}{path}", headers=headers, content=body, timeout=30
    )
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400 and answer.headers["content-type"].startswith("application/json"):
        assert "error" in answer.json()
