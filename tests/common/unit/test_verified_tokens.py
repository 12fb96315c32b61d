"""The verifier remembers a verified token until it expires or the keys are due; never a refusal."""

from __future__ import annotations

import time

import pytest

from sonobridge.common import auth
from sonobridge.common.auth import LocalIssuer
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
