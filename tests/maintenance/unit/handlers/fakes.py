"""Hand-written in-memory fakes of the maintenance ports, for use-case tests without a database."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from maintenance.maintenance_support import FakeClock, maintenance_config

from sonobridge.common.audit import AuditRecord
from sonobridge.common.idempotency import Body, IdempotencyKeys, KeyTaken, StoredAnswer
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.maintenance import ports
from sonobridge.maintenance.domain.audit import change
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
from sonobridge.maintenance.domain.tickets import (
    OPEN_STATES,
    Ticket,
    TicketSource,
    TicketState,
)
from sonobridge.maintenance.domain.utilisation import DailyUsage, ExamScan
from sonobridge.maintenance.handlers import Dependencies
from sonobridge.maintenance.metrics import MaintenanceMetrics


@dataclass
class Timer:
    """One breach timer row."""

    id: int
    ticket_id: str
    clock: str
    status: str
    due_at: datetime | None


@dataclass
class State:
    """Everything the fakes store; a unit of work restores it when its block raises."""

    devices: dict[str, Device] = field(default_factory=dict)
    device_history: dict[str, list[DeviceHistoryEntry]] = field(default_factory=dict)
    tickets: dict[str, Ticket] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    timers: list[Timer] = field(default_factory=list)
    preventive: dict[tuple[str, str], PreventiveTask] = field(default_factory=dict)
    usage: dict[tuple[str, date], DailyUsage] = field(default_factory=dict)
    exams: dict[str, date] = field(default_factory=dict)
    batches: dict[str, TelemetryBatch] = field(default_factory=dict)
    samples: dict[tuple[str, datetime], TelemetrySample] = field(default_factory=dict)
    findings: dict[str, tuple[ProbeVerdict, str | None]] = field(default_factory=dict)
    clean_findings: set[str] = field(default_factory=set)
    request_keys: dict[tuple[str, str], StoredAnswer] = field(default_factory=dict)
    audit: list[AuditRecord] = field(default_factory=list)
    events: list[tuple[str, Any]] = field(default_factory=list)


class FakeDevices:
    """Devices in memory."""

    def __init__(self, state: State) -> None:
        self.state = state

    def get(self, serial: str, *, lock: bool = False) -> Device | None:
        found = self.state.devices.get(serial)
        return copy.deepcopy(found)

    def add(self, device: Device) -> None:
        assert device.serial not in self.state.devices
        self.state.devices[device.serial] = copy.deepcopy(device)

    def save(self, device: Device) -> None:
        assert device.serial in self.state.devices
        self.state.devices[device.serial] = copy.deepcopy(device)

    def find(
        self,
        *,
        institutions: Sequence[str] | None = None,
        status: DeviceStatus | None = None,
        after: str = "",
        limit: int = 100,
    ) -> list[Device]:
        found = [
            copy.deepcopy(d)
            for s, d in sorted(self.state.devices.items())
            if s > after
            and (
                institutions is None
                or d.institution_id in institutions
                or d.loaned_to in institutions
            )
            and (status is None or d.status is status)
        ]
        return found[:limit]

    def record(self, serial: str, entry: DeviceHistoryEntry) -> None:
        self.state.device_history.setdefault(serial, []).append(entry)

    def history(self, serial: str) -> list[DeviceHistoryEntry]:
        return list(self.state.device_history.get(serial, []))


class FakeTickets:
    """Tickets in memory."""

    def __init__(self, state: State) -> None:
        self.state = state

    def get(self, ticket_id: str, *, lock: bool = False) -> Ticket | None:
        return copy.deepcopy(self.state.tickets.get(ticket_id))

    def _store(self, ticket: Ticket) -> None:
        stored = copy.deepcopy(ticket)
        stored.new_changes = []
        self.state.tickets[ticket.id] = stored
        ticket.new_changes.clear()

    def add(self, ticket: Ticket, *, rule: str = "") -> None:
        assert ticket.id not in self.state.tickets
        self.state.rules[ticket.id] = rule
        self._store(ticket)

    def save(self, ticket: Ticket) -> None:
        assert ticket.id in self.state.tickets
        self._store(ticket)

    def rule_of(self, ticket_id: str) -> str:
        return self.state.rules[ticket_id]

    def open_for_device(self, serial: str) -> list[Ticket]:
        found = [
            t
            for t in self.state.tickets.values()
            if t.device_serial == serial and t.state in OPEN_STATES
        ]
        return [copy.deepcopy(t) for t in sorted(found, key=lambda t: (t.opened_at, t.id))]

    def open_fault_ticket(self, serial: str) -> Ticket | None:
        for ticket in self.open_for_device(serial):
            if ticket.source is not TicketSource.PREVENTIVE:
                return ticket
        return None

    def open_load(self) -> dict[str, int]:
        load: dict[str, int] = {}
        for t in self.state.tickets.values():
            if t.state in OPEN_STATES and t.assignee:
                load[t.assignee] = load.get(t.assignee, 0) + 1
        return load

    def latest_opened_at(self, serial: str, *, source: TicketSource, rule: str) -> datetime | None:
        times = [
            t.opened_at
            for t in self.state.tickets.values()
            if t.device_serial == serial and t.source is source and self.state.rules[t.id] == rule
        ]
        return max(times, default=None)

    def last_repair(self, serial: str) -> datetime | None:
        times = [
            t.resolved_at
            for t in self.state.tickets.values()
            if t.device_serial == serial
            and t.source is not TicketSource.PREVENTIVE
            and t.resolved_at is not None
        ]
        return max(times, default=None)

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
        found = [
            copy.deepcopy(t)
            for i, t in sorted(self.state.tickets.items())
            if i > after
            and (institutions is None or t.institution_id in institutions)
            and (not states or t.state in states)
            and (not assignee or t.assignee == assignee)
            and (not device_serial or t.device_serial == device_serial)
        ]
        return found[:limit]

    def open_tickets(self) -> list[Ticket]:
        return [copy.deepcopy(t) for t in self.state.tickets.values() if t.state in OPEN_STATES]


class FakeTimers:
    """Breach timers in memory."""

    def __init__(self, state: State) -> None:
        self.state = state

    def _find(self, ticket_id: str, clock: str) -> Timer | None:
        return next(
            (t for t in self.state.timers if t.ticket_id == ticket_id and t.clock == clock), None
        )

    def _put(self, ticket_id: str, clock: str, status: str, due_at: datetime | None) -> None:
        timer = self._find(ticket_id, clock)
        if timer is None:
            self.state.timers.append(
                Timer(len(self.state.timers) + 1, ticket_id, clock, status, due_at)
            )
        elif timer.status != "fired":
            timer.status, timer.due_at = status, due_at

    def arm(self, ticket_id: str, clock: str, due_at: datetime | None) -> None:
        self._put(ticket_id, clock, "pending", due_at)

    def cancel(self, ticket_id: str, clock: str) -> None:
        timer = self._find(ticket_id, clock)
        self._put(ticket_id, clock, "cancelled", timer.due_at if timer else None)

    def due(self, now: datetime, limit: int) -> list[DueTimer]:
        due = [
            t
            for t in self.state.timers
            if t.status == "pending" and t.due_at is not None and t.due_at < now
        ]
        due.sort(key=lambda t: t.due_at or now)
        return [DueTimer(t.id, t.ticket_id) for t in due[:limit]]

    def claim(self, timer_id: int, now: datetime) -> bool:
        timer = self.state.timers[timer_id - 1]
        if timer.status != "pending" or timer.due_at is None or not timer.due_at < now:
            return False
        timer.status = "fired"
        return True


class FakePreventive:
    """Preventive tasks in memory."""

    def __init__(self, state: State) -> None:
        self.state = state

    def schedule(self, serial: str, kind: str, next_due_at: datetime) -> None:
        self.state.preventive[(serial, kind)] = PreventiveTask(serial, kind, next_due_at)

    def held_by(self, ticket_id: str) -> PreventiveTask | None:
        return next(
            (t for t in self.state.preventive.values() if t.open_ticket_id == ticket_id), None
        )

    def due(self, now: datetime, limit: int) -> list[PreventiveTask]:
        due = [
            t
            for t in self.state.preventive.values()
            if t.next_due_at <= now and t.open_ticket_id is None
        ]
        return sorted(due, key=lambda t: t.next_due_at)[:limit]

    def claim(self, serial: str, kind: str) -> PreventiveTask | None:
        task = self.state.preventive.get((serial, kind))
        return task if task is not None and task.open_ticket_id is None else None

    def hold(self, serial: str, kind: str, ticket_id: str) -> None:
        task = self.state.preventive[(serial, kind)]
        self.state.preventive[(serial, kind)] = replace(task, open_ticket_id=ticket_id)

    def done(self, serial: str, kind: str, *, at: datetime, next_due_at: datetime | None) -> None:
        task = self.state.preventive[(serial, kind)]
        self.state.preventive[(serial, kind)] = replace(
            task,
            open_ticket_id=None,
            last_done_at=at,
            next_due_at=next_due_at or task.next_due_at,
        )

    def release(self, ticket_id: str) -> None:
        for key, task in self.state.preventive.items():
            if task.open_ticket_id == ticket_id:
                self.state.preventive[key] = replace(task, open_ticket_id=None)


class FakeUsage:
    """Device-days and counted exams in memory."""

    def __init__(self, state: State) -> None:
        self.state = state

    def day(self, serial: str, day: date) -> DailyUsage | None:
        return self.state.usage.get((serial, day))

    def add_day(self, usage: DailyUsage) -> None:
        assert (usage.device_serial, usage.day) not in self.state.usage
        self.state.usage[(usage.device_serial, usage.day)] = usage

    def save_day(self, usage: DailyUsage) -> None:
        stored = self.state.usage[(usage.device_serial, usage.day)]
        self.state.usage[(usage.device_serial, usage.day)] = replace(
            stored, exam_seconds=usage.exam_seconds, telemetry_seconds=usage.telemetry_seconds
        )

    def days(self, start: date, end: date | None = None, serial: str = "") -> list[DailyUsage]:
        return [
            u
            for (s, d), u in sorted(self.state.usage.items())
            if d >= start and (end is None or d <= end) and (not serial or s == serial)
        ]

    def exam_counted(self, exam_key: str) -> bool:
        return exam_key in self.state.exams

    def count_exam(self, scan: ExamScan, day: date) -> None:
        self.state.exams[scan.exam_key] = day


class FakeTelemetry:
    """Telemetry samples and batches in memory."""

    def __init__(self, state: State) -> None:
        self.state = state

    def batch(self, batch_id: str) -> TelemetryBatch | None:
        return self.state.batches.get(batch_id)

    def add_batch(self, batch: TelemetryBatch) -> None:
        self.state.batches[batch.batch_id] = batch

    def stored_times(self, serial: str, times: Iterable[datetime]) -> set[datetime]:
        return {t for t in times if (serial, t) in self.state.samples}

    def add_samples(self, serial: str, batch_id: str, samples: Sequence[TelemetrySample]) -> None:
        for sample in samples:
            assert (serial, sample.recorded_at) not in self.state.samples
            self.state.samples[(serial, sample.recorded_at)] = sample

    def readings(self, serial: str, start: datetime, end: datetime) -> list[TelemetryReading]:
        return [
            TelemetryReading(at, s.temperature_c, s.drops)
            for (sn, at), s in sorted(self.state.samples.items())
            if sn == serial and start <= at <= end
        ]


class FakeFindings:
    """Probe findings in memory."""

    def __init__(self, state: State) -> None:
        self.state = state

    def known(self, finding_id: str) -> bool:
        return finding_id in self.state.findings

    def add(self, verdict: ProbeVerdict, *, fault_signal: bool = True) -> None:
        self.state.findings[verdict.finding_id] = (verdict, None)
        if not fault_signal:
            self.state.clean_findings.add(verdict.finding_id)

    def unticketed(self, serial: str, after: datetime | None) -> list[ProbeFinding]:
        return [
            ProbeFinding(
                v.finding_id,
                v.observed_at,
                v.evidence_keys,
                v.finding_id not in self.state.clean_findings,
            )
            for v, ticket in self.state.findings.values()
            if v.device_serial == serial
            and ticket is None
            and (after is None or v.observed_at > after)
        ]

    def link(self, finding_ids: Sequence[str], ticket_id: str) -> None:
        for finding_id in finding_ids:
            verdict, _ = self.state.findings[finding_id]
            self.state.findings[finding_id] = (verdict, ticket_id)


class FakeRequestKeys:
    """Idempotency keys in memory, with the request fingerprint and the answer."""

    def __init__(self, state: State) -> None:
        self.state = state

    def find(self, owner: str, key: str) -> StoredAnswer | None:
        return self.state.request_keys.get((owner, key))

    def reserve(self, owner: str, key: str, request: str, at: datetime) -> None:
        if (owner, key) in self.state.request_keys:
            raise KeyTaken(key)
        self.state.request_keys[(owner, key)] = StoredAnswer(request, 0, {})

    def remember(self, owner: str, key: str, status: int, body: Body) -> None:
        request = self.state.request_keys[(owner, key)].request
        self.state.request_keys[(owner, key)] = StoredAnswer(request, status, body)


class FakeAudit:
    """The audit trail in memory."""

    def __init__(self, state: State) -> None:
        self.state = state

    def write(
        self, *, at: datetime, actor: str, action: str, target: str, detail: str = ""
    ) -> None:
        record = change(at=at, actor=actor, action=action, target=target, detail=detail)
        self.state.audit.append(replace(record, id=len(self.state.audit) + 1))

    def page(self, *, target: str, after: int, limit: int) -> list[AuditRecord]:
        found = [
            r for r in self.state.audit if r.id > after and (not target or r.resource_id == target)
        ]
        return found[:limit]


class FakeAnnouncements:
    """Events recorded as (kind, payload) pairs."""

    def __init__(self, state: State) -> None:
        self.state = state

    def ticket_opened(self, ticket: Ticket) -> None:
        self.state.events.append(("ticket_opened", ticket.id))

    def ticket_updated(
        self, ticket: Ticket, *, before: TicketState, at: datetime, actor: str, note: str
    ) -> None:
        self.state.events.append(("ticket_updated", (ticket.id, before, ticket.state, note)))

    def device_status_changed(self, change: StatusChange) -> None:
        self.state.events.append(("device_status_changed", change))


class FakeUnitOfWork:
    """Every fake repository on one shared state."""

    def __init__(self, state: State) -> None:
        self.devices: ports.DeviceRepository = FakeDevices(state)
        self.tickets: ports.TicketRepository = FakeTickets(state)
        self.timers: ports.SlaTimers = FakeTimers(state)
        self.preventive: ports.PreventiveTasks = FakePreventive(state)
        self.usage: ports.UsageLedger = FakeUsage(state)
        self.telemetry: ports.TelemetryLog = FakeTelemetry(state)
        self.findings: ports.ProbeFindings = FakeFindings(state)
        self.request_keys: IdempotencyKeys = FakeRequestKeys(state)
        self.audit: ports.AuditLog = FakeAudit(state)
        self.events: ports.Announcements = FakeAnnouncements(state)
        self.after_commit: list[Callable[[], None]] = []


class FakeUnits:
    """Units of work over one in-memory state; a block that raises leaves no trace."""

    def __init__(self) -> None:
        self.state = State()
        self.commits = 0

    @contextmanager
    def __call__(self) -> Iterator[FakeUnitOfWork]:
        before = copy.deepcopy(self.state)
        work = FakeUnitOfWork(self.state)
        try:
            yield work
        except BaseException:
            self._restore(before)
            raise
        self.commits += 1
        for effect in work.after_commit:
            effect()

    def _restore(self, before: State) -> None:
        for name in vars(before):
            setattr(self.state, name, getattr(before, name))

    def join(self, transaction: object) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.state)

    def kinds(self) -> list[str]:
        """Return the kinds of the announced events, in order."""
        return [kind for kind, _ in self.state.events]


def fake_dependencies(clock: FakeClock | None = None) -> tuple[Dependencies, FakeUnits]:
    """Return handler dependencies on fakes, and the fake units to inspect."""
    units = FakeUnits()
    deps = Dependencies(
        units=units,
        config=maintenance_config(),
        clock=clock or FakeClock(),
        metrics=MaintenanceMetrics(ServiceMetrics("maintenance")),
    )
    return deps, units
