"""What the maintenance use cases need from persistence and messaging, as Protocols."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Protocol

from sonobridge.common.audit import AuditRecord
from sonobridge.common.idempotency import IdempotencyKeys
from sonobridge.maintenance.domain.devices import (
    Device,
    DeviceHistoryEntry,
    DeviceStatus,
    StatusChange,
)
from sonobridge.maintenance.domain.health import (
    ProbeFinding,
    ProbeVerdict,
    TelemetryBatch,
    TelemetryReading,
    TelemetrySample,
)
from sonobridge.maintenance.domain.preventive import PreventiveTask
from sonobridge.maintenance.domain.sla import DueTimer
from sonobridge.maintenance.domain.tickets import Ticket, TicketSource, TicketState
from sonobridge.maintenance.domain.utilisation import DailyUsage, ExamScan


class DeviceRepository(Protocol):
    """Devices and their append-only history."""

    def get(self, serial: str, *, lock: bool = False) -> Device | None:
        """Return the device, or None."""
        ...

    def add(self, device: Device) -> None:
        """Insert a new device."""
        ...

    def save(self, device: Device) -> None:
        """Store the device's current fields."""
        ...

    def find(
        self,
        *,
        institutions: Sequence[str] | None = None,
        status: DeviceStatus | None = None,
        after: str = "",
        limit: int = 100,
    ) -> list[Device]:
        """Return devices sorted by serial, optionally filtered (held or owned by institutions)."""
        ...

    def record(self, serial: str, entry: DeviceHistoryEntry) -> None:
        """Append to the device's history."""
        ...

    def history(self, serial: str) -> list[DeviceHistoryEntry]:
        """Return the device's history, oldest first."""
        ...


class TicketRepository(Protocol):
    """Tickets with their pauses and append-only history."""

    def get(self, ticket_id: str, *, lock: bool = False) -> Ticket | None:
        """Return the ticket, or None."""
        ...

    def add(self, ticket: Ticket, *, rule: str = "") -> None:
        """Insert a new ticket and its first history entries."""
        ...

    def save(self, ticket: Ticket) -> None:
        """Store the ticket's fields, its pauses, and append its new history entries."""
        ...

    def rule_of(self, ticket_id: str) -> str:
        """Return the rule that opened an automatic ticket ('' for others)."""
        ...

    def open_for_device(self, serial: str) -> list[Ticket]:
        """Return the device's open tickets, oldest first."""
        ...

    def open_fault_ticket(self, serial: str) -> Ticket | None:
        """Return the device's oldest open ticket that is not preventive."""
        ...

    def open_load(self) -> dict[str, int]:
        """Return open tickets per assignee."""
        ...

    def latest_opened_at(self, serial: str, *, source: TicketSource, rule: str) -> datetime | None:
        """Return when the newest ticket of this source and rule was opened for the device."""
        ...

    def last_repair(self, serial: str) -> datetime | None:
        """Return when the device's last fault ticket was resolved."""
        ...

    def find(
        self,
        *,
        institutions: Sequence[str] | None = None,
        states: Sequence[TicketState] | None = None,
        assignee: str | None = None,
        device_serial: str | None = None,
        after: str = "",
        limit: int = 100,
    ) -> list[Ticket]:
        """Return tickets sorted by id, filtered."""
        ...

    def open_tickets(self) -> list[Ticket]:
        """Return every open ticket with its pauses but without history (for the gauges)."""
        ...


class SlaTimers(Protocol):
    """Durable breach timers, one per ticket and clock; a fired timer never changes again."""

    def arm(self, ticket_id: str, clock: str, due_at: datetime | None) -> None:
        """Make the timer pending with this deadline (None while paused)."""
        ...

    def cancel(self, ticket_id: str, clock: str) -> None:
        """Make the timer never fire."""
        ...

    def due(self, now: datetime, limit: int) -> list[DueTimer]:
        """Return pending timers whose deadline is before `now`, earliest first."""
        ...

    def claim(self, timer_id: int, now: datetime) -> bool:
        """Mark a due timer fired; return False when another pass already did."""
        ...


class PreventiveTasks(Protocol):
    """Preventive tasks per device and kind."""

    def schedule(self, serial: str, kind: str, next_due_at: datetime) -> None:
        """Add a task for a newly registered device."""
        ...

    def held_by(self, ticket_id: str) -> PreventiveTask | None:
        """Return the task the ticket carries out, or None."""
        ...

    def due(self, now: datetime, limit: int) -> list[PreventiveTask]:
        """Return tasks due by `now` with no open ticket, earliest first."""
        ...

    def claim(self, serial: str, kind: str) -> PreventiveTask | None:
        """Lock the task if it still has no open ticket; None otherwise."""
        ...

    def hold(self, serial: str, kind: str, ticket_id: str) -> None:
        """Record the ticket that carries out the task."""
        ...

    def done(self, serial: str, kind: str, *, at: datetime, next_due_at: datetime | None) -> None:
        """Record the task done at `at`, due again at `next_due_at` (unchanged when None)."""
        ...

    def release(self, ticket_id: str) -> None:
        """Leave the task due again without a ticket."""
        ...


class UsageLedger(Protocol):
    """Scan time per device-day and the exams already counted."""

    def day(self, serial: str, day: date) -> DailyUsage | None:
        """Return (and lock) one device-day, or None."""
        ...

    def add_day(self, usage: DailyUsage) -> None:
        """Insert a device-day."""
        ...

    def save_day(self, usage: DailyUsage) -> None:
        """Store a device-day's seconds."""
        ...

    def days(self, start: date, end: date | None = None, serial: str = "") -> list[DailyUsage]:
        """Return device-days from `start` to `end` (inclusive), optionally of one device."""
        ...

    def exam_counted(self, exam_key: str) -> bool:
        """Return True when the exam's scan time was counted before."""
        ...

    def count_exam(self, scan: ExamScan, day: date) -> None:
        """Remember that the exam was counted on `day`."""
        ...


class TelemetryLog(Protocol):
    """Telemetry samples and the batches that brought them."""

    def batch(self, batch_id: str) -> TelemetryBatch | None:
        """Return a batch received before, or None."""
        ...

    def add_batch(self, batch: TelemetryBatch) -> None:
        """Remember a batch."""
        ...

    def stored_times(self, serial: str, times: Iterable[datetime]) -> set[datetime]:
        """Return which of `times` already have a sample of the device."""
        ...

    def add_samples(self, serial: str, batch_id: str, samples: Sequence[TelemetrySample]) -> None:
        """Store new samples."""
        ...

    def readings(self, serial: str, start: datetime, end: datetime) -> list[TelemetryReading]:
        """Return the device's readings recorded within [start, end]."""
        ...


class ProbeFindings(Protocol):
    """Probe-health fault signals per exam."""

    def known(self, finding_id: str) -> bool:
        """Return True when the finding was recorded before."""
        ...

    def add(self, verdict: ProbeVerdict, *, fault_signal: bool = True) -> None:
        """Record an exam's verdict: a fault signal, or a clean exam that interrupts them."""
        ...

    def unticketed(self, serial: str, after: datetime | None) -> list[ProbeFinding]:
        """Return the device's findings with no ticket, observed after `after`."""
        ...

    def link(self, finding_ids: Sequence[str], ticket_id: str) -> None:
        """Attach findings to a ticket."""
        ...


class AuditLog(Protocol):
    """The audit trail."""

    def write(
        self, *, at: datetime, actor: str, action: str, target: str, detail: str = ""
    ) -> None:
        """Write an audit record (`domain.audit.change`) in this transaction."""
        ...

    def page(self, *, target: str, after: int, limit: int) -> list[AuditRecord]:
        """Return up to `limit` records after id `after`, oldest first."""
        ...


class Announcements(Protocol):
    """Events staged in this transaction's outbox."""

    def ticket_opened(self, ticket: Ticket) -> None:
        """Announce a new ticket."""
        ...

    def ticket_updated(
        self, ticket: Ticket, *, before: TicketState, at: datetime, actor: str, note: str
    ) -> None:
        """Announce a ticket change."""
        ...

    def device_status_changed(self, change: StatusChange) -> None:
        """Announce a device status change."""
        ...


class UnitOfWork(Protocol):
    """One transaction over every repository, plus the effects to run once it commits."""

    devices: DeviceRepository
    tickets: TicketRepository
    timers: SlaTimers
    preventive: PreventiveTasks
    usage: UsageLedger
    telemetry: TelemetryLog
    findings: ProbeFindings
    request_keys: IdempotencyKeys
    audit: AuditLog
    events: Announcements
    after_commit: list[Callable[[], None]]


class UnitsOfWork(Protocol):
    """Starts units of work."""

    def __call__(self) -> AbstractContextManager[UnitOfWork]:
        """Run a block in one transaction; run its after-commit effects only if it commits."""
        ...

    def join(self, transaction: object) -> UnitOfWork:
        """Return a unit of work inside a transaction someone else commits (the consumer's)."""
        ...
