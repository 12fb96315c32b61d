"""SQLAlchemy implementation of the Reporting port, inside the caller's session."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    case,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from sonobridge.common.audit import AuditRecord
from sonobridge.common.record_rows import record_from_row, row_values
from sonobridge.common.sql_records import SqlAuditLog
from sonobridge.reporting.adapters import orm
from sonobridge.reporting.domain.access import ReadScope
from sonobridge.reporting.domain.assignment import DutyRole, Shift
from sonobridge.reporting.domain.policy import PRIORITY_RANK
from sonobridge.reporting.domain.reads import OPEN_STATES
from sonobridge.reporting.domain.records import (
    NEVER_DUE,
    Alert,
    Delivery,
    Draft,
    Exam,
    HistoryEntry,
    Notification,
    QualityLabel,
    ReadPosition,
    ReadRecord,
    ReportVersion,
    Timer,
    Verdict,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def _worklist_order() -> tuple[ColumnElement[Any], ColumnElement[Any], ColumnElement[Any]]:
    t = orm.reads
    rank = case(
        {p.value: r for p, r in PRIORITY_RANK.items()}, value=t.c.priority, else_=len(PRIORITY_RANK)
    )
    due = func.coalesce(t.c.due_at, literal(NEVER_DUE, orm.TS))
    return rank, due, t.c.read_id


def in_scope(query: Select[Any], scope: ReadScope) -> Select[Any]:
    """Narrow a query on reads to what `scope` admits."""
    if scope.everything:
        return query
    if not scope.institutions:
        return query.where(false())
    t = orm.reads
    query = query.where(t.c.institution.in_(sorted(scope.institutions)))
    if scope.worklists is None:
        return query
    allowed: list[ColumnElement[bool]] = [t.c.worklist.in_(sorted(scope.worklists))]
    if scope.home is not None:
        allowed.append(t.c.institution == scope.home)
    return query.where(or_(*allowed))


def _one(kind: type[T], row: Any | None) -> T | None:
    """Return a row as a domain record (None stays None); UtcDateTime columns come back aware."""
    return None if row is None else record_from_row(kind, row)


def _all(kind: type[T], rows: Iterable[Any]) -> list[T]:
    return [record_from_row(kind, row) for row in rows]


class ReportingRepository:
    """Reads, timers, rosters, reports, alerts, notifications, deliveries and audit records."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- exams and reads ------------------------------------------------------------------
    def exam(self, study_uid: str) -> Exam | None:
        """Return the exam recorded from ExamCompleted, if any."""
        t = orm.exams
        return _one(Exam, self.session.execute(select(t).where(t.c.study_uid == study_uid)).first())

    def add_exam(self, exam: Exam) -> bool:
        """Record an exam once; return False when it was already known."""
        if self.exam(exam.study_uid) is not None:
            return False
        self.session.execute(insert(orm.exams).values(**asdict(exam)))
        return True

    def read(self, read_id: str, *, lock: bool = False) -> ReadRecord | None:
        """Return one read."""
        t = orm.reads
        query = select(t).where(t.c.read_id == read_id)
        if lock:
            query = query.with_for_update()
        return _one(ReadRecord, self.session.execute(query).first())

    def read_for_study(self, study_uid: str, kind: str = "primary") -> ReadRecord | None:
        """Return the exam's read of `kind`."""
        t = orm.reads
        query = select(t).where(t.c.study_uid == study_uid, t.c.kind == kind)
        return _one(ReadRecord, self.session.execute(query).first())

    def add_read(self, read: ReadRecord) -> None:
        """Insert a read."""
        self.session.execute(insert(orm.reads).values(**asdict(read)))

    def update_read(self, read_id: str, **values: Any) -> None:
        """Change fields of a read."""
        self.session.execute(
            update(orm.reads).where(orm.reads.c.read_id == read_id).values(**values)
        )

    def open_reads_of_device(self, device_serial: str) -> list[ReadRecord]:
        """Return the open reads of exams made with a device."""
        t = orm.reads
        query = select(t).where(t.c.state.in_(OPEN_STATES), t.c.device_serial == device_serial)
        return _all(ReadRecord, self.session.execute(query))

    def read_page(
        self,
        *,
        scope: ReadScope,
        worklists: Iterable[str] | None,
        states: Iterable[str],
        assigned_to: str | None,
        after: ReadPosition | None,
        limit: int,
    ) -> list[ReadRecord]:
        """Return up to `limit` reads in scope, most urgent first, strictly after `after`."""
        t = orm.reads
        rank, due, read_id = _worklist_order()
        query = in_scope(select(t), scope).where(t.c.state.in_(list(states)))
        if worklists is not None:
            query = query.where(t.c.worklist.in_(list(worklists)))
        if assigned_to:
            query = query.where(t.c.assigned_to == assigned_to)
        if after is not None:
            # Keyset: rows that change or vanish before the cursor never shift the next page.
            last_rank, last_due, last_id = after
            query = query.where(
                tuple_(rank, due, read_id)
                > tuple_(literal(last_rank), literal(last_due, orm.TS), literal(last_id))
            )
        rows = self.session.execute(query.order_by(rank, due, read_id).limit(limit))
        return _all(ReadRecord, rows)

    def open_depth(self, scope: ReadScope) -> dict[str, int]:
        """Return how many open reads in scope each worklist holds."""
        t = orm.reads
        query = select(t.c.worklist, func.count()).where(t.c.state.in_(OPEN_STATES))
        rows = self.session.execute(in_scope(query, scope).group_by(t.c.worklist))
        return {name: int(n) for name, n in rows}

    def open_load(self) -> dict[str, int]:
        """Return how many open reads each reader holds."""
        t = orm.reads
        rows = self.session.execute(
            select(t.c.assigned_to, func.count())
            .where(t.c.state.in_(OPEN_STATES), t.c.assigned_to.is_not(None))
            .group_by(t.c.assigned_to)
        )
        return {user: int(n) for user, n in rows}

    def depth_by_worklist(self) -> dict[str, int]:
        """Return open reads per worklist."""
        t = orm.reads
        rows = self.session.execute(
            select(t.c.worklist, func.count())
            .where(t.c.state.in_(OPEN_STATES))
            .group_by(t.c.worklist)
        )
        return {name: int(n) for name, n in rows}

    def add_history(self, read_id: str, entry: HistoryEntry) -> None:
        """Append to a read's history."""
        self.session.execute(insert(orm.read_history).values(read_id=read_id, **asdict(entry)))

    def has_history(self, read_id: str, *, kind: str, detail: str) -> bool:
        """True when the read's history already holds this entry."""
        t = orm.read_history
        return (
            self.session.execute(
                select(t.c.id).where(t.c.read_id == read_id, t.c.kind == kind, t.c.detail == detail)
            ).first()
            is not None
        )

    def history(self, read_id: str) -> list[HistoryEntry]:
        """Return a read's history, oldest first."""
        t = orm.read_history
        rows = self.session.execute(select(t).where(t.c.read_id == read_id).order_by(t.c.id))
        return _all(HistoryEntry, rows)

    # -- timers ---------------------------------------------------------------------------
    def arm_timer(self, kind: str, subject: str, fire_at: datetime, now: datetime) -> None:
        """Arm a durable timer unless the same one is already armed."""
        t = orm.timers
        exists = self.session.execute(
            select(t.c.id).where(t.c.subject == subject, t.c.kind == kind, t.c.fire_at == fire_at)
        ).first()
        if exists is None:
            self.session.execute(
                insert(t).values(kind=kind, subject=subject, fire_at=fire_at, created_at=now)
            )

    def due_timer_ids(self, now: datetime, limit: int) -> list[int]:
        """Return ids of unfired timers due at `now`, earliest first."""
        t = orm.timers
        rows = self.session.execute(
            select(t.c.id)
            .where(t.c.fired_at.is_(None), t.c.fire_at <= now)
            .order_by(t.c.fire_at, t.c.id)
            .limit(limit)
        )
        return [int(r[0]) for r in rows]

    def claim_timer(self, timer_id: int) -> Timer | None:
        """Lock an unfired timer for firing; None when another worker has it or it fired."""
        t = orm.timers
        query = (
            select(t.c.id, t.c.kind, t.c.subject, t.c.fire_at)
            .where(t.c.id == timer_id, t.c.fired_at.is_(None))
            .with_for_update(skip_locked=True)
        )
        return _one(Timer, self.session.execute(query).first())

    def mark_fired(self, timer_id: int, now: datetime) -> bool:
        """Mark a timer fired; False when it was already (the caller must roll back)."""
        t = orm.timers
        result = self.session.execute(
            update(t).where(t.c.id == timer_id, t.c.fired_at.is_(None)).values(fired_at=now)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    # -- rosters --------------------------------------------------------------------------
    def shifts(self, worklist: str) -> list[Shift]:
        """Return the roster of a worklist."""
        t = orm.shifts
        rows = self.session.execute(select(t).where(t.c.worklist == worklist).order_by(t.c.id))
        return [record_from_row(Shift, r, role=DutyRole(r.role)) for r in rows]

    def replace_shifts(self, worklist: str, shifts: Iterable[Shift]) -> None:
        """Replace a worklist's roster."""
        t = orm.shifts
        self.session.execute(t.delete().where(t.c.worklist == worklist))
        for s in shifts:
            self.session.execute(
                insert(t).values(
                    worklist=worklist, **row_values(s, exclude={"worklist"}, role=s.role.value)
                )
            )

    # -- drafts, verdicts, reports --------------------------------------------------------
    def draft(self, read_id: str) -> Draft | None:
        """Return the read's draft."""
        t = orm.drafts
        return _one(Draft, self.session.execute(select(t).where(t.c.read_id == read_id)).first())

    def put_draft(self, draft: Draft) -> None:
        """Create or replace a draft."""
        t = orm.drafts
        self.session.execute(t.delete().where(t.c.read_id == draft.read_id))
        self.session.execute(insert(t).values(**asdict(draft)))

    def delete_draft(self, read_id: str) -> None:
        """Remove a draft once signed."""
        self.session.execute(orm.drafts.delete().where(orm.drafts.c.read_id == read_id))

    def verdicts(self, read_id: str) -> list[Verdict]:
        """Return the reader's verdicts on the read's AI findings."""
        t = orm.ai_verdicts
        return _all(Verdict, self.session.execute(select(t).where(t.c.read_id == read_id)))

    def put_verdict(self, verdict: Verdict) -> None:
        """Create or replace one verdict."""
        t = orm.ai_verdicts
        self.session.execute(
            t.delete().where(
                t.c.read_id == verdict.read_id,
                t.c.finding_code == verdict.finding_code,
                t.c.model_name == verdict.model_name,
            )
        )
        self.session.execute(insert(t).values(**asdict(verdict)))

    def quality_labels(self, read_id: str) -> list[QualityLabel]:
        """Return the expert's quality labels of the read's instances."""
        t = orm.quality_labels
        rows = self.session.execute(select(t).where(t.c.read_id == read_id))
        return _all(QualityLabel, rows)

    def put_quality_label(self, label: QualityLabel) -> None:
        """Create or replace the label of one instance on a read."""
        t = orm.quality_labels
        self.session.execute(
            t.delete().where(
                t.c.read_id == label.read_id, t.c.sop_instance_uid == label.sop_instance_uid
            )
        )
        self.session.execute(insert(t).values(**asdict(label)))

    def report_versions(self, report_id: str) -> list[ReportVersion]:
        """Return every version of a report, oldest first."""
        t = orm.report_versions
        rows = self.session.execute(
            select(t).where(t.c.report_id == report_id).order_by(t.c.version)
        )
        return _all(ReportVersion, rows)

    def add_report_version(self, version: ReportVersion) -> None:
        """Insert a signed report version (versions are never changed afterwards)."""
        self.session.execute(insert(orm.report_versions).values(**asdict(version)))

    # -- alerts and notifications ---------------------------------------------------------
    def add_alert(self, alert: Alert) -> None:
        """Open a follow-up alert."""
        self.session.execute(insert(orm.alerts).values(**asdict(alert)))

    def alert(self, alert_id: str) -> Alert | None:
        """Return one alert."""
        t = orm.alerts
        return _one(Alert, self.session.execute(select(t).where(t.c.alert_id == alert_id)).first())

    def alerts(
        self, *, institutions: frozenset[str] | None, states: Iterable[str] | None
    ) -> list[Alert]:
        """Return alerts of `institutions` (None: all), newest first."""
        t = orm.alerts
        query = select(t).order_by(t.c.raised_at.desc())
        if institutions is not None:
            query = query.where(t.c.institution.in_(sorted(institutions)))
        if states is not None:
            query = query.where(t.c.state.in_(list(states)))
        return _all(Alert, self.session.execute(query))

    def alerted_terms(self, report_id: str) -> set[str]:
        """Return terms already alerted for any version of a report."""
        t = orm.alerts
        rows = self.session.execute(select(t.c.matched_terms).where(t.c.report_id == report_id))
        return {term for (terms,) in rows for term in terms}

    def update_alert(self, alert_id: str, **values: Any) -> None:
        """Change an alert's state."""
        t = orm.alerts
        self.session.execute(update(t).where(t.c.alert_id == alert_id).values(**values))

    def notify(
        self,
        *,
        kind: str,
        at: datetime,
        payload: dict[str, Any],
        user: str | None = None,
        role: str | None = None,
        institution: str | None = None,
    ) -> None:
        """Add a notification for a user, or for everyone with a role (at an institution)."""
        self.session.execute(
            insert(orm.notifications).values(
                recipient_user=user,
                recipient_role=role,
                recipient_institution=institution,
                kind=kind,
                at=at,
                payload=payload,
            )
        )

    def notifications_after(
        self, *, user: str, roles: Iterable[str], institution: str | None, after: int, limit: int
    ) -> list[Notification]:
        """Return a user's notifications with ids above `after`, oldest first."""
        t = orm.notifications
        role_list = list(roles)
        to_role = t.c.recipient_role.in_(role_list) & (
            t.c.recipient_institution.is_(None) | (t.c.recipient_institution == institution)
        )
        rows = self.session.execute(
            select(t.c.id, t.c.kind, t.c.at, t.c.payload)
            .where(t.c.id > after, (t.c.recipient_user == user) | to_role)
            .order_by(t.c.id)
            .limit(limit)
        )
        return _all(Notification, rows)

    # -- deliveries and audit -------------------------------------------------------------
    def add_delivery(self, delivery: Delivery) -> None:
        """Queue an outbound HTTP delivery."""
        values = asdict(delivery)
        del values["id"]
        self.session.execute(insert(orm.deliveries).values(**values))

    def due_deliveries(self, now: datetime, limit: int) -> list[Delivery]:
        """Return deliveries to attempt now."""
        t = orm.deliveries
        rows = self.session.execute(
            select(t)
            .where(t.c.delivered_at.is_(None), t.c.gave_up_at.is_(None), t.c.next_attempt_at <= now)
            .order_by(t.c.next_attempt_at, t.c.id)
            .limit(limit)
        )
        return _all(Delivery, rows)

    def update_delivery(self, delivery_pk: int, **values: Any) -> None:
        """Record a delivery attempt."""
        t = orm.deliveries
        self.session.execute(update(t).where(t.c.id == delivery_pk).values(**values))

    def audit(self, record: AuditRecord) -> None:
        """Write an audit record in the caller's transaction."""
        SqlAuditLog(self.session, orm.audit_log).append(record)

    def audit_trail(self, *, read_id: str | None, report_id: str | None) -> list[AuditRecord]:
        """Return audit records about a read or report (or both at once), oldest first."""
        log = SqlAuditLog(self.session, orm.audit_log)
        if read_id:
            # A read's records name the read as subject and its report as the related resource.
            records = log.trail(resource_type="read", resource_id=read_id)
            about_read = [r for r in records if r.resource_id == read_id]
            if report_id:
                return [r for r in about_read if r.related_id == report_id]
            return about_read
        # A report's records: the report as subject, or as the report of an audited read.
        return log.trail(resource_id=report_id) if report_id else log.trail()
