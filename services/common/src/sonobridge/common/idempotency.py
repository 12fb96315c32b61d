"""Idempotency-Key: run a change once per client key and replay its first answer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sonobridge.common.problems import Conflict, InvalidInput

MAX_KEY_CHARS = 255

Body = dict[str, Any]


@dataclass(frozen=True)
class RequestKey:
    """A client's Idempotency-Key and a fingerprint of the request it came with."""

    value: str
    fingerprint: str

    def __post_init__(self) -> None:
        if not 1 <= len(self.value) <= MAX_KEY_CHARS:
            raise InvalidInput(f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} characters")


def fingerprint(method: str, path: str, payload: Any) -> str:
    """Digest a request's method, path and parsed body, independent of key order and spacing."""
    canonical = json.dumps([method, path, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def request_key(value: str | None, method: str, path: str, payload: Any) -> RequestKey | None:
    """Pair an Idempotency-Key header, when sent, with the fingerprint of its request."""
    if value is None:
        return None
    return RequestKey(value, fingerprint(method, path, payload))


@dataclass(frozen=True)
class StoredAnswer:
    """The fingerprint a key was first used with and the answer that request got."""

    request: str
    status: int
    body: Body


@dataclass(frozen=True)
class Outcome:
    """What a change answered, and whether it replays the first answer given to its key."""

    body: Body
    status: int
    replayed: bool = False


class KeyTaken(Conflict):
    """Another request holds this key: it committed, or is committing, first."""

    # Still committing when re-read: the client retries later (409, as the RFC draft says).
    def __init__(self, key: str) -> None:
        super().__init__(
            "a request with this Idempotency-Key is still being processed",
            reason="idempotency_key_in_use",
            idempotency_key=key,
        )


class IdempotencyKeys(Protocol):
    """The keys already used, per owner, with the answers given to them."""

    def find(self, owner: str, key: str) -> StoredAnswer | None:
        """Return the answer remembered for an owner's key, if any."""
        ...

    def reserve(self, owner: str, key: str, request: str, at: datetime) -> None:
        """Claim a key before the change it guards; raise KeyTaken if it is already claimed."""
        ...

    def remember(self, owner: str, key: str, status: int, body: Body) -> None:
        """Store the answer on a reserved key, in the transaction of the change it answers."""
        ...


def replay(stored: StoredAnswer, key: RequestKey) -> Outcome:
    """Replay a stored answer; a key reused for a different request is refused."""
    # An empty fingerprint marks a key migrated from a table that stored none (maintenance's
    # before 0003): it replays for any request, as it did when it was issued.
    if stored.request and stored.request != key.fingerprint:
        raise InvalidInput(
            "Idempotency-Key was already used for a different request",
            idempotency_key=key.value,
        )
    return Outcome(stored.body, stored.status, replayed=True)


U = TypeVar("U")


def once(
    begin: Callable[[], AbstractContextManager[U]],
    keys: Callable[[U], IdempotencyKeys],
    *,
    owner: str,
    key: RequestKey | None,
    status: int,
    work: Callable[[U], Body],
    now: Callable[[], datetime],
) -> Outcome:
    """Run `work` in one transaction with its Idempotency-Key, or replay the key's answer."""
    if key is None:
        with begin() as unit:
            return Outcome(work(unit), status)
    try:
        with begin() as unit:
            store = keys(unit)
            stored = store.find(owner, key.value)
            if stored is not None:
                return replay(stored, key)
            # The key row goes in first: a concurrent request with the same key then waits on
            # it (PostgreSQL) or on the write lock (SQLite) rather than on the read, and fails
            # on the primary key instead of acting twice. The change, its events and the answer
            # commit together, so there is no moment where one exists without the other.
            store.reserve(owner, key.value, key.fingerprint, now())
            body = work(unit)
            store.remember(owner, key.value, status, body)
        return Outcome(body, status)
    except KeyTaken:
        with begin() as unit:
            stored = keys(unit).find(owner, key.value)
        if stored is None:
            raise
        return replay(stored, key)


class KeyedUnit(Protocol):
    """A unit of work that holds its service's Idempotency-Keys."""

    @property
    def request_keys(self) -> IdempotencyKeys:
        """The keys table, in this unit's transaction."""
        ...


K = TypeVar("K", bound=KeyedUnit)


def _request_keys(unit: KeyedUnit) -> IdempotencyKeys:
    return unit.request_keys


def create_once(
    begin: Callable[[], AbstractContextManager[K]],
    *,
    owner: str,
    key: RequestKey | None,
    work: Callable[[K], Body],
    at: datetime,
) -> Outcome:
    """Create something (201) once per Idempotency-Key, or replay the key's first answer."""
    return once(begin, _request_keys, owner=owner, key=key, status=201, work=work, now=lambda: at)
