"""The SQLAlchemy unit of work: one session, every repository on it, events into its outbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, sessionmaker

from sonobridge.common.delivery import Outbox
from sonobridge.common.envelope import ProtoMessage
from sonobridge.common.idempotency import IdempotencyKeys
from sonobridge.common.sql_records import SqlIdempotencyKeys
from sonobridge.maintenance import ports
from sonobridge.maintenance.adapters import messages, orm
from sonobridge.maintenance.adapters.records import (
    SqlAuditLog,
    SqlPreventiveTasks,
    SqlProbeFindings,
    SqlSlaTimers,
    SqlTelemetryLog,
    SqlUsageLedger,
)
from sonobridge.maintenance.adapters.repositories import (
    SqlDeviceRepository,
    SqlTicketRepository,
)
from sonobridge.maintenance.domain.devices import StatusChange
from sonobridge.maintenance.domain.tickets import Ticket, TicketState

SOURCE = "maintenance"


class OutboxAnnouncements:
    """Stage protobuf events in the session's outbox, keyed by device serial."""

    def __init__(self, session: Session, outbox: Outbox) -> None:
        self.session = session
        self.outbox = outbox

    def _emit(self, message: ProtoMessage, key: str) -> None:
        self.outbox.emit(self.session, message, source=SOURCE, key=key)

    def ticket_opened(self, ticket: Ticket) -> None:
        """Announce a new ticket."""
        self._emit(messages.ticket_opened(ticket), ticket.device_serial)

    def ticket_updated(
        self, ticket: Ticket, *, before: TicketState, at: datetime, actor: str, note: str
    ) -> None:
        """Announce a ticket change."""
        message = messages.ticket_updated(ticket, before=before, at=at, actor=actor, note=note)
        self._emit(message, ticket.device_serial)

    def device_status_changed(self, change: StatusChange) -> None:
        """Announce a device status change."""
        self._emit(messages.device_status_changed(change), change.serial)


class SqlUnitOfWork:
    """Every repository on one session."""

    def __init__(self, session: Session, outbox: Outbox) -> None:
        self.session = session
        # Typed as the ports, so mypy checks every adapter against its Protocol.
        self.devices: ports.DeviceRepository = SqlDeviceRepository(session)
        self.tickets: ports.TicketRepository = SqlTicketRepository(session)
        self.timers: ports.SlaTimers = SqlSlaTimers(session)
        self.preventive: ports.PreventiveTasks = SqlPreventiveTasks(session)
        self.usage: ports.UsageLedger = SqlUsageLedger(session)
        self.telemetry: ports.TelemetryLog = SqlTelemetryLog(session)
        self.findings: ports.ProbeFindings = SqlProbeFindings(session)
        self.request_keys: IdempotencyKeys = SqlIdempotencyKeys(session, orm.idempotency_keys)
        self.audit: ports.AuditLog = SqlAuditLog(session)
        self.events: ports.Announcements = OutboxAnnouncements(session, outbox)
        self.after_commit: list[Callable[[], None]] = []

    def run_after_commit(self) -> None:
        """Run the after-commit effects once."""
        effects, self.after_commit = self.after_commit, []
        for effect in effects:
            effect()


class SqlUnitsOfWork:
    """Start units of work on a session factory."""

    def __init__(self, sessions: sessionmaker[Session], outbox: Outbox | None = None) -> None:
        self.sessions = sessions
        self.outbox = outbox or Outbox(orm.outbox)

    @contextmanager
    def __call__(self) -> Iterator[SqlUnitOfWork]:
        """Run a block in one transaction; run its after-commit effects only if it commits."""
        with self.sessions.begin() as session:
            work = SqlUnitOfWork(session, self.outbox)
            yield work
        work.run_after_commit()

    def join(self, transaction: object) -> SqlUnitOfWork:
        """Return a unit of work inside a session the consumer worker commits."""
        assert isinstance(transaction, Session)
        work = SqlUnitOfWork(transaction, self.outbox)
        # The worker commits after the handler returns; metrics move only once it has.
        sa_event.listen(
            transaction, "after_commit", lambda _session: work.run_after_commit(), once=True
        )
        return work
