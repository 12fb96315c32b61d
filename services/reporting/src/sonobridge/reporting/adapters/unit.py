"""The SQLAlchemy unit of work: one session, its repository, its outbox, its post-commit effects."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from sonobridge.common import idempotency
from sonobridge.common.delivery import Outbox
from sonobridge.common.idempotency import Outcome, RequestKey
from sonobridge.common.sql_records import SqlIdempotencyKeys
from sonobridge.reporting.adapters import messages, orm
from sonobridge.reporting.adapters.repository import ReportingRepository
from sonobridge.reporting.domain.events import Published
from sonobridge.reporting.domain.records import JsonObject
from sonobridge.reporting.ports import Clock, Work

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
        return idempotency.once(
            self.sessions.begin,
            lambda session: SqlIdempotencyKeys(session, orm.idempotency_keys),
            owner=user,
            key=key,
            status=status,
            work=lambda session: change(SqlWork(session, self.outbox)),
            now=self.clock,
        )
