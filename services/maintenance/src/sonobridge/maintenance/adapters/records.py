"""SQL timers, preventive tasks, usage, telemetry, probe findings and the audit trail."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, insert, select, update
from sqlalchemy.orm import Session

from sonobridge.common.audit import AuditRecord
from sonobridge.common.record_rows import record_from_row, row_values
from sonobridge.common.sql_records import SqlAuditLog as CommonAuditLog
from sonobridge.maintenance.adapters import orm
from sonobridge.maintenance.domain.audit import change
from sonobridge.maintenance.domain.health import (
    ProbeFinding,
    ProbeVerdict,
    TelemetryBatch,
    TelemetryReading,
    TelemetrySample,
)
from sonobridge.maintenance.domain.preventive import PreventiveTask
from sonobridge.maintenance.domain.sla import DueTimer
from sonobridge.maintenance.domain.utilisation import DailyUsage, ExamScan


class SqlSlaTimers:
    """Breach timers in one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _put(self, ticket_id: str, clock: str, values: dict[str, Any]) -> None:
        t = orm.sla_timers
        row = self.session.execute(
            select(t.c.id, t.c.status).where(t.c.ticket_id == ticket_id, t.c.clock == clock)
        ).first()
        if row is None:
            self.session.execute(insert(t).values(ticket_id=ticket_id, clock=clock, **values))
        elif row.status != "fired":
            self.session.execute(update(t).where(t.c.id == row.id).values(**values))

    def arm(self, ticket_id: str, clock: str, due_at: datetime | None) -> None:
        """Make the timer pending with this deadline (None while paused)."""
        self._put(ticket_id, clock, {"status": "pending", "due_at": due_at})

    def cancel(self, ticket_id: str, clock: str) -> None:
        """Make the timer never fire."""
        self._put(ticket_id, clock, {"status": "cancelled"})

    def due(self, now: datetime, limit: int) -> list[DueTimer]:
        """Return pending timers whose deadline is before `now`, earliest first."""
        t = orm.sla_timers
        rows = self.session.execute(
            select(t.c.id, t.c.ticket_id)
            .where(t.c.status == "pending", t.c.due_at.is_not(None), t.c.due_at < now)
            .order_by(t.c.due_at)
            .limit(limit)
        )
        return [DueTimer(r.id, r.ticket_id) for r in rows]

    def claim(self, timer_id: int, now: datetime) -> bool:
        """Mark a due timer fired; return False when another pass already did."""
        t = orm.sla_timers
        # The conditional update is the exactly-once guard across replicas and restarts.
        result = self.session.execute(
            update(t)
            .where(t.c.id == timer_id, t.c.status == "pending", t.c.due_at < now)
            .values(status="fired", fired_at=now)
        )
        return cast(CursorResult[Any], result).rowcount == 1


def _task(row: Any) -> PreventiveTask:
    return PreventiveTask(
        row.device_serial,
        row.kind,
        row.next_due_at,
        row.last_done_at,
        row.open_ticket_id,
    )


class SqlPreventiveTasks:
    """Preventive tasks in one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def schedule(self, serial: str, kind: str, next_due_at: datetime) -> None:
        """Add a task for a newly registered device."""
        self.session.execute(
            insert(orm.preventive_tasks).values(
                device_serial=serial, kind=kind, next_due_at=next_due_at
            )
        )

    def held_by(self, ticket_id: str) -> PreventiveTask | None:
        """Return the task the ticket carries out, or None."""
        p = orm.preventive_tasks
        row = self.session.execute(select(p).where(p.c.open_ticket_id == ticket_id)).first()
        return _task(row) if row else None

    def due(self, now: datetime, limit: int) -> list[PreventiveTask]:
        """Return tasks due by `now` with no open ticket, earliest first."""
        p = orm.preventive_tasks
        rows = self.session.execute(
            select(p)
            .where(p.c.next_due_at <= now, p.c.open_ticket_id.is_(None))
            .order_by(p.c.next_due_at)
            .limit(limit)
        )
        return [_task(r) for r in rows]

    def claim(self, serial: str, kind: str) -> PreventiveTask | None:
        """Lock the task if it still has no open ticket; None otherwise."""
        p = orm.preventive_tasks
        row = self.session.execute(
            select(p)
            .where(p.c.device_serial == serial, p.c.kind == kind, p.c.open_ticket_id.is_(None))
            .with_for_update()
        ).first()
        return _task(row) if row else None

    def hold(self, serial: str, kind: str, ticket_id: str) -> None:
        """Record the ticket that carries out the task."""
        p = orm.preventive_tasks
        self.session.execute(
            update(p)
            .where(p.c.device_serial == serial, p.c.kind == kind)
            .values(open_ticket_id=ticket_id)
        )

    def done(self, serial: str, kind: str, *, at: datetime, next_due_at: datetime | None) -> None:
        """Record the task done at `at`, due again at `next_due_at` (unchanged when None)."""
        p = orm.preventive_tasks
        values: dict[str, Any] = {"open_ticket_id": None, "last_done_at": at}
        if next_due_at is not None:
            values["next_due_at"] = next_due_at
        self.session.execute(
            update(p).where(p.c.device_serial == serial, p.c.kind == kind).values(**values)
        )

    def release(self, ticket_id: str) -> None:
        """Leave the task due again without a ticket."""
        p = orm.preventive_tasks
        self.session.execute(
            update(p).where(p.c.open_ticket_id == ticket_id).values(open_ticket_id=None)
        )


class SqlUsageLedger:
    """Device-days and counted exams in one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def day(self, serial: str, day: date) -> DailyUsage | None:
        """Return (and lock) one device-day, or None."""
        u = orm.daily_usage
        row = self.session.execute(
            select(u).where(u.c.device_serial == serial, u.c.day == day).with_for_update()
        ).first()
        return _usage(row) if row else None

    def add_day(self, usage: DailyUsage) -> None:
        """Insert a device-day."""
        self.session.execute(
            insert(orm.daily_usage).values(
                device_serial=usage.device_serial,
                day=usage.day,
                institution_id=usage.institution_id,
                exam_seconds=usage.exam_seconds,
                telemetry_seconds=usage.telemetry_seconds,
            )
        )

    def save_day(self, usage: DailyUsage) -> None:
        """Store a device-day's seconds."""
        u = orm.daily_usage
        self.session.execute(
            update(u)
            .where(u.c.device_serial == usage.device_serial, u.c.day == usage.day)
            .values(exam_seconds=usage.exam_seconds, telemetry_seconds=usage.telemetry_seconds)
        )

    def days(self, start: date, end: date | None = None, serial: str = "") -> list[DailyUsage]:
        """Return device-days from `start` to `end` (inclusive), optionally of one device."""
        u = orm.daily_usage
        query = select(u).where(u.c.day >= start)
        if end is not None:
            query = query.where(u.c.day <= end)
        if serial:
            query = query.where(u.c.device_serial == serial)
        return [_usage(r) for r in self.session.execute(query)]

    def exam_counted(self, exam_key: str) -> bool:
        """Return True when the exam's scan time was counted before."""
        e = orm.exam_usage
        return (
            self.session.execute(select(e.c.exam_key).where(e.c.exam_key == exam_key)).first()
            is not None
        )

    def count_exam(self, scan: ExamScan, day: date) -> None:
        """Remember that the exam was counted on `day`."""
        self.session.execute(
            insert(orm.exam_usage).values(
                exam_key=scan.exam_key,
                device_serial=scan.device_serial,
                institution_id=scan.institution_id,
                day=day,
                scan_seconds=scan.scan_seconds,
            )
        )


def _usage(row: Any) -> DailyUsage:
    return DailyUsage(
        row.device_serial, row.day, row.institution_id, row.exam_seconds, row.telemetry_seconds
    )


class SqlTelemetryLog:
    """Telemetry samples and batches in one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def batch(self, batch_id: str) -> TelemetryBatch | None:
        """Return a batch received before, or None."""
        b = orm.telemetry_batches
        row = self.session.execute(select(b).where(b.c.batch_id == batch_id)).first()
        if row is None:
            return None
        return record_from_row(TelemetryBatch, row, opened_ticket_ids=tuple(row.opened_ticket_ids))

    def add_batch(self, batch: TelemetryBatch) -> None:
        """Remember a batch."""
        self.session.execute(
            insert(orm.telemetry_batches).values(
                **row_values(batch, opened_ticket_ids=list(batch.opened_ticket_ids))
            )
        )

    def stored_times(self, serial: str, times: Iterable[datetime]) -> set[datetime]:
        """Return which of `times` already have a sample of the device."""
        s = orm.telemetry_samples
        found = self.session.execute(
            select(s.c.recorded_at).where(
                s.c.device_serial == serial,
                s.c.recorded_at.in_(list(times)),
            )
        ).scalars()
        return set(found)

    def add_samples(self, serial: str, batch_id: str, samples: Sequence[TelemetrySample]) -> None:
        """Store new samples."""
        if not samples:
            return
        self.session.execute(
            insert(orm.telemetry_samples),
            [
                {
                    "device_serial": serial,
                    "recorded_at": sample.recorded_at,
                    "battery_percent": sample.battery_percent,
                    "temperature_c": sample.temperature_c,
                    "drops": sample.drops,
                    "scan_seconds": sample.scan_seconds,
                    "firmware_version": sample.firmware_version,
                    "error_codes": list(sample.error_codes),
                    "batch_id": batch_id,
                }
                for sample in samples
            ],
        )

    def readings(self, serial: str, start: datetime, end: datetime) -> list[TelemetryReading]:
        """Return the device's readings recorded within [start, end]."""
        s = orm.telemetry_samples
        rows = self.session.execute(
            select(s.c.recorded_at, s.c.temperature_c, s.c.drops).where(
                s.c.device_serial == serial, s.c.recorded_at >= start, s.c.recorded_at <= end
            )
        )
        return [TelemetryReading(r.recorded_at, r.temperature_c, r.drops) for r in rows]


class SqlProbeFindings:
    """Probe-health findings in one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def known(self, finding_id: str) -> bool:
        """Return True when the finding was recorded before."""
        f = orm.probe_findings
        return (
            self.session.execute(select(f.c.finding_id).where(f.c.finding_id == finding_id)).first()
            is not None
        )

    def add(self, verdict: ProbeVerdict, *, fault_signal: bool = True) -> None:
        """Record an exam's verdict: a fault signal, or a clean exam that interrupts them."""
        self.session.execute(
            insert(orm.probe_findings).values(
                # The verdict's own fault flag is kept as fault_signal, which the caller decides.
                **row_values(
                    verdict, exclude={"suspected_fault"}, evidence_keys=list(verdict.evidence_keys)
                ),
                fault_signal=fault_signal,
            )
        )

    def unticketed(self, serial: str, after: datetime | None) -> list[ProbeFinding]:
        """Return the device's findings with no ticket, observed after `after`."""
        f = orm.probe_findings
        query = select(f.c.finding_id, f.c.observed_at, f.c.evidence_keys, f.c.fault_signal).where(
            f.c.device_serial == serial, f.c.ticket_id.is_(None)
        )
        if after is not None:
            query = query.where(f.c.observed_at > after)
        return [
            ProbeFinding(r.finding_id, r.observed_at, tuple(r.evidence_keys), r.fault_signal)
            for r in self.session.execute(query)
        ]

    def link(self, finding_ids: Sequence[str], ticket_id: str) -> None:
        """Attach findings to a ticket."""
        f = orm.probe_findings
        self.session.execute(
            update(f).where(f.c.finding_id.in_(list(finding_ids))).values(ticket_id=ticket_id)
        )


class SqlAuditLog:
    """The audit trail in one session: common's audit table, addressed by target."""

    def __init__(self, session: Session) -> None:
        self.log = CommonAuditLog(session, orm.audit_log)

    def write(
        self, *, at: datetime, actor: str, action: str, target: str, detail: str = ""
    ) -> None:
        """Write an audit record in this transaction."""
        self.log.append(change(at=at, actor=actor, action=action, target=target, detail=detail))

    def page(self, *, target: str, after: int, limit: int) -> list[AuditRecord]:
        """Return up to `limit` records after id `after`, oldest first."""
        return self.log.trail(resource_id=target or None, after=after, limit=limit)
