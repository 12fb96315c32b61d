"""Bearer-token checks: every bad token is a 401 problem+json, a good one yields the principal."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from sonobridge.common.auth import LocalIssuer, TokenVerifier
from sonobridge.common.http import CurrentPrincipal, create_service_app
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.problems import Unauthenticated


@pytest.fixture(scope="module")
def jwks_url(issuer: LocalIssuer) -> Iterator[str]:
    """Serve the issuer's JWKS over real HTTP, as an OIDC provider would."""
    app = FastAPI()
    app.get("/.well-known/jwks.json")(lambda: issuer.jwks())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/.well-known/jwks.json"
    server.should_exit = True
    thread.join(5)


@pytest.fixture(scope="module")
def client(issuer: LocalIssuer, jwks_url: str) -> Iterator[httpx.Client]:
    verifier = TokenVerifier(audience="sonobridge", issuer=issuer.issuer, jwks_url=jwks_url)
    app = create_service_app(service="test", metrics=ServiceMetrics("test"), verifier=verifier)

    @app.get("/v1/whoami")
    def whoami(principal: CurrentPrincipal) -> dict[str, object]:
        return {
            "user": principal.user,
            "roles": sorted(principal.roles),
            "institution": principal.institution,
        }

    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client  # type: ignore[misc]


def _assert_401(response: httpx.Response, detail: str) -> None:
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["status"] == 401 and body["title"] == "Unauthenticated"
    assert detail in body["detail"]


def test_valid_token_yields_the_principal(client: httpx.Client, issuer: LocalIssuer) -> None:
    token = issuer.issue("nurse-li", ["operator"], "township-a", consortium="pujiang")
    response = client.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {
        "user": "nurse-li",
        "roles": ["operator"],
        "institution": "township-a",
    }


def test_missing_token_is_refused(client: httpx.Client) -> None:
    _assert_401(client.get("/v1/whoami"), "missing bearer token")


def test_non_bearer_scheme_is_refused(client: httpx.Client) -> None:
    _assert_401(client.get("/v1/whoami", headers={"Authorization": "Basic abc"}), "Bearer")


def test_expired_token_is_refused(client: httpx.Client, issuer: LocalIssuer) -> None:
    token = issuer.issue("nurse-li", ["operator"], "t", now=time.time() - 7200, ttl_seconds=600)
    _assert_401(client.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"}), "expired")


def test_token_signed_by_another_key_is_refused(client: httpx.Client, issuer: LocalIssuer) -> None:
    forger = LocalIssuer(issuer.issuer)
    # Same kid as the real key, so the verifier must reject on the signature itself.
    forger.kid = issuer.kid
    token = forger.issue("intruder", ["admin"], "t")
    _assert_401(
        client.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"}),
        "signature is invalid",
    )


def test_token_for_another_audience_is_refused(client: httpx.Client, issuer: LocalIssuer) -> None:
    token = issuer.issue("nurse-li", ["operator"], "t", audience="other-app")
    _assert_401(
        client.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"}),
        "another audience",
    )


def test_garbage_token_is_refused(client: httpx.Client) -> None:
    _assert_401(
        client.get("/v1/whoami", headers={"Authorization": "Bearer not.a.jwt"}), "malformed"
    )


def test_unknown_roles_are_dropped(issuer: LocalIssuer) -> None:
    principal = issuer.verifier().verify(issuer.issue("u", ["operator", "superuser"], "t"))
    assert principal.roles == frozenset({"operator"})


def test_a_verifier_may_trust_several_issuers_and_no_others(issuer: LocalIssuer) -> None:
    verifier = TokenVerifier(
        audience="sonobridge",
        issuer=["http://127.0.0.1:8090", "sonobridge-local"],
        jwks=issuer.jwks(),
    )
    for iss in ("http://127.0.0.1:8090", "sonobridge-local"):
        assert verifier.verify(issuer.issue("u", ["expert"], issuer=iss)).user == "u"
    with pytest.raises(Unauthenticated, match="another issuer"):
        verifier.verify(issuer.issue("u", ["expert"], issuer="http://elsewhere"))


def test_extra_claims_never_override_the_signed_identity(issuer: LocalIssuer) -> None:
    token = issuer.issue(
        "u",
        ["operator"],
        "township-east",
        extra_claims={"sub": "admin", "roles": ["admin"], "preferred_username": "u"},
    )
    principal = issuer.verifier().verify(token)
    assert (principal.user, principal.roles) == ("u", frozenset({"operator"}))
    assert principal.claims["preferred_username"] == "u"
