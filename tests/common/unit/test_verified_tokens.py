"""The verifier remembers a verified token until it expires or the keys are due; never a refusal."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sonobridge.common import auth
from sonobridge.common.auth import LocalIssuer
from sonobridge.common.http import CurrentPrincipal
from sonobridge.common.problems import Unauthenticated


def test_a_verified_token_is_answered_from_memory_until_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer = LocalIssuer("test")
    verifier = issuer.verifier()
    token = issuer.issue("nurse-1", ["operator"], "east", ttl_seconds=600)
    first = verifier.verify(token)
    assert verifier.verify(token) is first
    expires = float(first.claims["exp"])
    monkeypatch.setattr(auth.time, "time", lambda: expires + 1)
    # Past its expiry by this verifier's clock the token is checked again from scratch.
    assert verifier.verify(token) is not first


def test_a_refused_token_is_refused_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = LocalIssuer("test")
    verifier = LocalIssuer("another").verifier()
    token = issuer.issue("nurse-1", ["operator"], "east")
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            verifier.verify(token)
    expired = issuer.issue("nurse-1", ["operator"], "east", ttl_seconds=1, now=time.time() - 600)
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="expired"):
            issuer.verifier().verify(expired)


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "VERIFIED_TOKENS_KEPT", 3)
    issuer = LocalIssuer("test")
    verifier = issuer.verifier()
    tokens = [issuer.issue(f"user-{i}", ["operator"], "east") for i in range(5)]
    principals = [verifier.verify(t) for t in tokens]
    assert verifier.verify(tokens[-1]) is principals[-1]
    assert verifier.verify(tokens[0]) is not principals[0]


def test_a_long_lived_token_is_checked_again_when_the_signing_keys_are_due_a_refetch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer = LocalIssuer("test")
    verifier = issuer.verifier()
    token = issuer.issue("nurse-1", ["operator"], "east", ttl_seconds=3600)
    now = time.time()
    monkeypatch.setattr(auth.time, "time", lambda: now)
    first = verifier.verify(token)
    monkeypatch.setattr(auth.time, "time", lambda: now + auth.SIGNING_KEYS_LIFESPAN_S - 1)
    assert verifier.verify(token) is first
    # Past the keys' lifespan a withdrawn key must be able to stop it: checked from scratch.
    monkeypatch.setattr(auth.time, "time", lambda: now + auth.SIGNING_KEYS_LIFESPAN_S + 1)
    assert verifier.verify(token) is not first


def test_known_answers_only_headers_verified_before() -> None:
    issuer = LocalIssuer("test")
    verifier = issuer.verifier()
    token = issuer.issue("nurse-1", ["operator"], "east")
    assert verifier.known(f"Bearer {token}") is None  # never verified: nothing is checked here
    principal = verifier.verify_header(f"Bearer {token}")
    assert verifier.known(f"bearer  {token} ") is principal
    for header in (None, "", token, f"Basic {token}", "Bearer other"):
        assert verifier.known(header) is None


def test_a_known_caller_is_resolved_on_the_event_loop_and_a_new_one_on_a_worker() -> None:
    issuer = LocalIssuer("test")
    app = FastAPI()
    app.state.verifier = issuer.verifier()
    threads: list[str] = []
    original = app.state.verifier.verify_header

    def verify_header(header: str | None) -> auth.Principal:
        threads.append(threading.current_thread().name)
        return original(header)

    app.state.verifier.verify_header = verify_header

    @app.get("/who")
    async def who(principal: CurrentPrincipal) -> str:
        return principal.user

    token = issuer.issue("nurse-1", ["operator"], "east")
    with TestClient(app) as client:
        for _ in range(3):
            assert client.get("/who", headers={"Authorization": f"Bearer {token}"}).json() == (
                "nurse-1"
            )
        with pytest.raises(Unauthenticated):
            client.get("/who", headers={"Authorization": "Bearer not-a-token"})
    # Verified once, off the event loop; the repeats never left it. A bad token is still checked.
    assert len(threads) == 2
    assert threads == ["AnyIO worker thread"] * 2


def test_one_authorization_refuses_a_request_that_names_two_callers() -> None:
    assert auth.one_authorization([]) is None
    assert auth.one_authorization(["Bearer a"]) == "Bearer a"
    for values in (["Bearer a", "Bearer b"], ["Bearer a", "Bearer a"]):
        with pytest.raises(Unauthenticated, match="one authorization header, not 2"):
            auth.one_authorization(values)


def test_the_http_dependency_refuses_two_authorization_headers_even_if_one_was_seen() -> None:
    issuer = LocalIssuer("test")
    app = FastAPI()
    app.state.verifier = issuer.verifier()

    @app.get("/who")
    async def who(principal: CurrentPrincipal) -> str:
        return principal.user

    nurse = issuer.issue("nurse-1", ["operator"], "east")
    admin = issuer.issue("admin-1", ["admin"], "county")
    with TestClient(app) as client:
        for token in (nurse, admin):  # both known, so neither would be checked again
            assert client.get("/who", headers={"Authorization": f"Bearer {token}"}).is_success
        both = [("Authorization", f"Bearer {nurse}"), ("Authorization", f"Bearer {admin}")]
        with pytest.raises(Unauthenticated, match="one authorization header"):
            client.get("/who", headers=both)
