"""The SQLAlchemy unit of work: one session, its repository, its outbox, its post-commit effects."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sonobridge.common.delivery import Outbox
from sonobridge.common.problems import InvalidInput
from sonobridge.reporting.adapters import messages
from sonobridge.reporting.adapters.repository import (
    ReportingRepository,
    remember_response,
    reserve_key,
    stored_response,
)
from sonobridge.reporting.domain.events import Published
from sonobridge.reporting.domain.records import JsonObject
from sonobridge.reporting.ports import Clock, Outcome, RequestKey, Work

SOURCE = "reporting"


class SqlWork:
    """A transaction on the reporting database (the session belongs to whoever began it)."""

    def __init__(self, session: Session, outbox: Outbox) -> None:
        self.session = session
        self.outbox = outbox
        self.reporting = ReportingRepository(session)

    def emit(self, event: Published, key: str) -> JsonObject:
        """Stage the event's protobuf message in the outbox; return its JSON form."""
        message = messages.published(event)
        self.outbox.emit(self.session, message, source=SOURCE, key=key)
        return messages.as_json(message)

    def after_commit(self, effect: Callable[[], None]) -> None:
        """Run `effect` once the session's transaction commits; drop it on rollback."""
        session = self.session
        pending: list[Callable[[], None]] = session.info.setdefault("after_commit", [])
        if not pending:

            def _run(_session: Session) -> None:
                for fn in session.info.pop("after_commit", []):
                    fn()

            def _drop(_session: Session) -> None:
                session.info.pop("after_commit", None)

            event.listen(session, "after_commit", _run, once=True)
            event.listen(session, "after_rollback", _drop, once=True)
        pending.append(effect)


class SqlUnits:
    """Begins units of work and runs Idempotency-Key guarded changes."""

    def __init__(self, sessions: sessionmaker[Session], outbox: Outbox, clock: Clock) -> None:
        self.sessions = sessions
        self.outbox = outbox
        self.clock = clock

    @contextmanager
    def unit(self) -> Iterator[Work]:
        """Run a block in one transaction."""
        with self.sessions.begin() as session:
            yield SqlWork(session, self.outbox)

    def joined(self, session: Any) -> Work:
        """Return a unit of work on a transaction someone else began (the consumer worker)."""
        return SqlWork(cast(Session, session), self.outbox)

    def once(
        self,
        user: str,
        key: RequestKey | None,
        status: int,
        change: Callable[[Work], dict[str, Any]],
    ) -> Outcome:
        """Run a change in one transaction with its Idempotency-Key, or replay the key's answer."""
        if key is None:
            with self.unit() as work:
                return Outcome(change(work), status)
        if not 1 <= len(key.value) <= 255:
            raise InvalidInput("Idempotency-Key must be 1 to 255 characters")
        try:
            with self.sessions.begin() as session:
                stored = stored_response(session, user, key.value)
                if stored is not None:
                    return _replay(stored, key)
                # The key row goes in first: a concurrent request with the same key then waits
                # on it (PostgreSQL) or on the write lock (SQLite) rather than on the read, and
                # fails on the primary key instead of acting twice. The change, its events and
                # the answer commit together, so neither exists without the other.
                reserve_key(
                    session, user=user, key=key.value, request=key.fingerprint, at=self.clock()
                )
                body = change(SqlWork(session, self.outbox))
                remember_response(session, user=user, key=key.value, status=status, body=body)
            return Outcome(body, status)
        except IntegrityError:
            with self.sessions.begin() as session:
                stored = stored_response(session, user, key.value)
            if stored is None:
                raise
            return _replay(stored, key)


def _replay(stored: dict[str, Any], key: RequestKey) -> Outcome:
    if stored["request"] != key.fingerprint:
        raise InvalidInput(
            "Idempotency-Key was already used for a different request",
            idempotency_key=key.value,
        )
    return Outcome(cast(dict[str, Any], stored["body"]), int(stored["status"]), replayed=True)
