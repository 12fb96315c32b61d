"""People who log in: argon2 password hashes kept in the consortium file, and a login throttle."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from sonobridge.node.consortium import Consortium, Person, load

log = logging.getLogger(__name__)

MIN_PASSWORD_CHARS = 10
MAX_TRACKED_KEYS = 10_000
_HASHER = PasswordHasher()


@cache
def _decoy_hash() -> str:
    """A hash to verify against when the user is unknown, so a wrong name costs a wrong password."""
    # Made on first need, not at import: one argon2 hash is ~0.3 CPU seconds of start-up.
    return _HASHER.hash("decoy password that matches nobody")


def hash_password(password: str) -> str:
    """Return the argon2id hash of `password`."""
    return _HASHER.hash(password)


def password_matches(password_hash: str | None, password: str) -> bool:
    """Return True when `password` matches `password_hash` (False for no hash)."""
    try:
        _HASHER.verify(password_hash or _decoy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None


def with_password(consortium: Consortium, user: str, password: str) -> Consortium:
    """Return `consortium` with `user`'s password set; ValueError for a short password."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    consortium.person(user)
    people = tuple(
        replace(p, password_hash=hash_password(password)) if p.user == user else p
        for p in consortium.people
    )
    return replace(consortium, people=people)


def with_passwords(consortium: Consortium, password: str) -> Consortium:
    """Return `consortium` with every person's password set to `password` (the demo's)."""
    hashed = hash_password(password)
    return replace(
        consortium, people=tuple(replace(p, password_hash=hashed) for p in consortium.people)
    )


def set_password(consortium_file: Path, user: str, password: str) -> None:
    """Hash `password` into `user`'s entry of the consortium file (written atomically)."""
    updated = with_password(load(consortium_file), user, password)
    tmp = consortium_file.with_suffix(".tmp")
    tmp.write_text(updated.to_json(), encoding="utf-8")
    # The file now holds password hashes: readable by its owner only.
    tmp.chmod(0o600)
    os.replace(tmp, consortium_file)


class PeopleDirectory:
    """The consortium's people, re-read when the file changes (a new password takes at once)."""

    def __init__(self, consortium_file: Path) -> None:
        self.path = consortium_file
        self._lock = threading.Lock()
        self._stamp: float | None = None
        self._consortium: Consortium | None = None

    def consortium(self) -> Consortium | None:
        """Return the current consortium, or None while the file is absent."""
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._consortium = load(self.path)
                except ValueError:
                    # A half-edited file must not lock everyone out: keep the last good one.
                    log.exception(
                        "consortium file %s is unreadable; keeping the last one", self.path
                    )
            return self._consortium

    def person(self, user: str) -> Person | None:
        """Return the person called `user`, or None."""
        consortium = self.consortium()
        if consortium is None:
            return None
        try:
            return consortium.person(user)
        except KeyError:
            return None

    def authenticate(self, user: str, password: str) -> Person | None:
        """Return the person when `password` is theirs; None otherwise."""
        person = self.person(user)
        ok = password_matches(person.password_hash if person else None, password)
        return person if ok and person is not None else None


class LoginThrottle:
    """Refuse logins for an account or address after too many recent wrong passwords."""

    def __init__(
        self,
        *,
        max_failures: int = 5,
        window_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str) -> deque[float]:
        entries = self._failures.setdefault(key, deque())
        cutoff = self._clock() - self.window
        while entries and entries[0] < cutoff:
            entries.popleft()
        return entries

    def retry_after(self, *keys: str) -> float:
        """Seconds until a login for `keys` is allowed again (0 when it is allowed now)."""
        with self._lock:
            waits = [
                entries[0] + self.window - self._clock()
                for entries in (self._recent(k) for k in keys)
                if len(entries) >= self.max_failures
            ]
        return max([0.0, *waits])

    def failed(self, *keys: str) -> None:
        """Record a wrong password against every key (user name, client address)."""
        with self._lock:
            now = self._clock()
            for key in keys:
                self._recent(key).append(now)
            # Made-up user names must not grow the table without bound: sweep the stale ones.
            if len(self._failures) > MAX_TRACKED_KEYS:
                for key in [k for k in self._failures if not self._recent(k)]:
                    del self._failures[key]

    def tracked(self) -> int:
        """How many user names and addresses have failures on record."""
        with self._lock:
            return len(self._failures)

    def succeeded(self, user_key: str) -> None:
        """Forget an account's failures once its owner logs in."""
        with self._lock:
            self._failures.pop(user_key, None)
