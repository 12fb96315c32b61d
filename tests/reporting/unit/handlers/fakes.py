"""Hand-written fakes of the reporting ports: an in-memory repository and unit of work."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sonobridge.common.audit import AuditRecord
from sonobridge.common.auth import Principal
from sonobridge.reporting.adapters.policy_file import read_policy
from sonobridge.reporting.domain.access import ReadScope
from sonobridge.reporting.domain.assignment import Shift
from sonobridge.reporting.domain.events import ExamContext, Published
from sonobridge.reporting.domain.policy import PRIORITY_RANK, Priority
from sonobridge.reporting.domain.reads import OPEN_STATES
from sonobridge.reporting.domain.records import (
    Alert,
    Delivery,
    Draft,
    Exam,
    HistoryEntry,
    JsonObject,
    Notification,
    QualityLabel,
    ReadPosition,
    ReadRecord,
    ReportVersion,
    Timer,
    Verdict,
)
from sonobridge.reporting.metrics import ReportingMetrics
from sonobridge.reporting.ports import Dependencies, Outcome, RequestKey, Work
from sonobridge.reporting.settings import ReportingSettings

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
POLICY = read_policy()


@dataclass
class FakeTables:
    """What the fake repository stores; one instance outlives every unit of work."""

    exams: dict[str, Exam] = field(default_factory=dict)
    reads: dict[str, ReadRecord] = field(default_factory=dict)
    history: dict[str, list[HistoryEntry]] = field(default_factory=dict)
    timers: list[tuple[Timer, datetime | None]] = field(default_factory=list)
    shifts: dict[str, list[Shift]] = field(default_factory=dict)
    drafts: dict[str, Draft] = field(default_factory=dict)
    verdicts: dict[tuple[str, str, str], Verdict] = field(default_factory=dict)
    quality_labels: dict[tuple[str, str], QualityLabel] = field(default_factory=dict)
    versions: list[ReportVersion] = field(default_factory=list)
    alerts: dict[str, Alert] = field(default_factory=dict)
    notifications: list[tuple[Notification, str | None, str | None, str | None]] = field(
        default_factory=list
    )
    deliveries: list[Delivery] = field(default_factory=list)
    audit: list[AuditRecord] = field(default_factory=list)
    events: list[tuple[Published, str]] = field(default_factory=list)


class FakeReporting:
    """The Reporting port over plain dicts and lists."""

    def __init__(self, tables: FakeTables) -> None:
        self.t = tables

    def exam(self, study_uid: str) -> Exam | None:
        return self.t.exams.get(study_uid)

    def add_exam(self, exam: Exam) -> bool:
        if exam.study_uid in self.t.exams:
            return False
        self.t.exams[exam.study_uid] = exam
        return True

    def read(self, read_id: str, *, lock: bool = False) -> ReadRecord | None:
        return self.t.reads.get(read_id)

    def read_for_study(self, study_uid: str, kind: str = "primary") -> ReadRecord | None:
        return next(
            (r for r in self.t.reads.values() if r.study_uid == study_uid and r.kind == kind), None
        )

    def add_read(self, read: ReadRecord) -> None:
        self.t.reads[read.read_id] = read

    def update_read(self, read_id: str, **values: Any) -> None:
        self.t.reads[read_id] = replace(self.t.reads[read_id], **values)

    def open_reads_of_device(self, device_serial: str) -> list[ReadRecord]:
        return [
            r
            for r in self.t.reads.values()
            if r.device_serial == device_serial and r.state in OPEN_STATES
        ]

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
        wanted = set(states)
        names = set(worklists) if worklists is not None else None
        rows = sorted(
            (
                r
                for r in self.t.reads.values()
                if scope.admits(r.worklist, r.institution)
                and r.state in wanted
                and (names is None or r.worklist in names)
                and (not assigned_to or r.assigned_to == assigned_to)
                and (after is None or r.position() > after)
            ),
            key=ReadRecord.position,
        )
        return rows[:limit]

    def open_depth(self, scope: ReadScope) -> dict[str, int]:
        depth: dict[str, int] = {}
        for r in self.t.reads.values():
            if r.state in OPEN_STATES and scope.admits(r.worklist, r.institution):
                depth[r.worklist] = depth.get(r.worklist, 0) + 1
        return depth

    def open_load(self) -> dict[str, int]:
        load: dict[str, int] = {}
        for r in self.t.reads.values():
            if r.state in OPEN_STATES and r.assigned_to:
                load[r.assigned_to] = load.get(r.assigned_to, 0) + 1
        return load

    def depth_by_worklist(self) -> dict[str, int]:
        return self.open_depth(ReadScope(everything=True))

    def add_history(self, read_id: str, entry: HistoryEntry) -> None:
        self.t.history.setdefault(read_id, []).append(entry)

    def has_history(self, read_id: str, *, kind: str, detail: str) -> bool:
        return any(h.kind == kind and h.detail == detail for h in self.history(read_id))

    def history(self, read_id: str) -> list[HistoryEntry]:
        return list(self.t.history.get(read_id, []))

    def arm_timer(self, kind: str, subject: str, fire_at: datetime, now: datetime) -> None:
        for timer, _fired in self.t.timers:
            if (timer.kind, timer.subject, timer.fire_at) == (kind, subject, fire_at):
                return
        self.t.timers.append((Timer(len(self.t.timers) + 1, kind, subject, fire_at), None))

    def due_timer_ids(self, now: datetime, limit: int) -> list[int]:
        due = [t for t, fired in self.t.timers if fired is None and t.fire_at <= now]
        return [t.id for t in sorted(due, key=lambda t: (t.fire_at, t.id))][:limit]

    def claim_timer(self, timer_id: int) -> Timer | None:
        timer, fired = self.t.timers[timer_id - 1]
        return timer if fired is None else None

    def mark_fired(self, timer_id: int, now: datetime) -> bool:
        timer, fired = self.t.timers[timer_id - 1]
        if fired is not None:
            return False
        self.t.timers[timer_id - 1] = (timer, now)
        return True

    def shifts(self, worklist: str) -> list[Shift]:
        return list(self.t.shifts.get(worklist, []))

    def replace_shifts(self, worklist: str, shifts: Iterable[Shift]) -> None:
        self.t.shifts[worklist] = list(shifts)

    def draft(self, read_id: str) -> Draft | None:
        return self.t.drafts.get(read_id)

    def put_draft(self, draft: Draft) -> None:
        self.t.drafts[draft.read_id] = draft

    def delete_draft(self, read_id: str) -> None:
        self.t.drafts.pop(read_id, None)

    def verdicts(self, read_id: str) -> list[Verdict]:
        return [v for v in self.t.verdicts.values() if v.read_id == read_id]

    def put_verdict(self, verdict: Verdict) -> None:
        self.t.verdicts[(verdict.read_id, verdict.finding_code, verdict.model_name)] = verdict

    def quality_labels(self, read_id: str) -> list[QualityLabel]:
        return [lb for lb in self.t.quality_labels.values() if lb.read_id == read_id]

    def put_quality_label(self, label: QualityLabel) -> None:
        self.t.quality_labels[(label.read_id, label.sop_instance_uid)] = label

    def report_versions(self, report_id: str) -> list[ReportVersion]:
        return sorted(
            (v for v in self.t.versions if v.report_id == report_id), key=lambda v: v.version
        )

    def add_report_version(self, version: ReportVersion) -> None:
        self.t.versions.append(version)

    def add_alert(self, alert: Alert) -> None:
        self.t.alerts[alert.alert_id] = alert

    def alert(self, alert_id: str) -> Alert | None:
        return self.t.alerts.get(alert_id)

    def alerts(
        self, *, institutions: frozenset[str] | None, states: Iterable[str] | None
    ) -> list[Alert]:
        wanted = set(states) if states is not None else None
        return [
            a
            for a in self.t.alerts.values()
            if (institutions is None or a.institution in institutions)
            and (wanted is None or a.state in wanted)
        ]

    def alerted_terms(self, report_id: str) -> set[str]:
        return {
            term
            for a in self.t.alerts.values()
            if a.report_id == report_id
            for term in a.matched_terms
        }

    def update_alert(self, alert_id: str, **values: Any) -> None:
        self.t.alerts[alert_id] = replace(self.t.alerts[alert_id], **values)

    def notify(
        self,
        *,
        kind: str,
        at: datetime,
        payload: JsonObject,
        user: str | None = None,
        role: str | None = None,
        institution: str | None = None,
    ) -> None:
        note = Notification(len(self.t.notifications) + 1, kind, at, payload)
        self.t.notifications.append((note, user, role, institution))

    def notifications_after(
        self, *, user: str, roles: Iterable[str], institution: str | None, after: int, limit: int
    ) -> list[Notification]:
        held = set(roles)
        mine = [
            n
            for n, to_user, to_role, to_institution in self.t.notifications
            if n.id > after
            and (to_user == user or (to_role in held and to_institution in (None, institution)))
        ]
        return mine[:limit]

    def add_delivery(self, delivery: Delivery) -> None:
        self.t.deliveries.append(replace(delivery, id=len(self.t.deliveries) + 1))

    def due_deliveries(self, now: datetime, limit: int) -> list[Delivery]:
        return [d for d in self.t.deliveries if d.next_attempt_at <= now][:limit]

    def update_delivery(self, delivery_pk: int, **values: Any) -> None:
        done = {k: values.pop(k) for k in ("delivered_at", "gave_up_at") if k in values}
        delivery = replace(self.t.deliveries[delivery_pk - 1], **values)
        if done:
            # Delivered or given up: never due again.
            delivery = replace(delivery, next_attempt_at=datetime.max.replace(tzinfo=UTC))
        self.t.deliveries[delivery_pk - 1] = delivery

    def audit(self, record: AuditRecord) -> None:
        self.t.audit.append(record)

    def audit_trail(self, *, read_id: str | None, report_id: str | None) -> list[AuditRecord]:
        def about(r: AuditRecord) -> tuple[str | None, str | None]:
            if r.resource_type == "read":
                return r.resource_id, r.related_id
            return None, r.resource_id or None

        return [
            r
            for r in self.t.audit
            if (not read_id or about(r)[0] == read_id)
            and (not report_id or about(r)[1] == report_id)
        ]


class FakeWork:
    """A unit of work over the fake tables; effects run when the block ends without error."""

    def __init__(self, tables: FakeTables) -> None:
        self.tables = tables
        self.reporting = FakeReporting(tables)
        self.effects: list[Callable[[], None]] = []

    def emit(self, event: Published, key: str) -> JsonObject:
        self.tables.events.append((event, key))
        return {"event": type(event).__name__, "key": key}

    def after_commit(self, effect: Callable[[], None]) -> None:
        self.effects.append(effect)


class FakeStore:
    """An object store in a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, body: Any, *, length: int, content_type: str) -> None:
        self.objects[key] = body.read()

    def open(self, key: str) -> Any:
        @contextmanager
        def chunks() -> Iterator[list[bytes]]:
            yield [self.objects[key]]

        return chunks()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Harness:
    """Dependencies over fakes, with the tables to assert on."""

    deps: Dependencies
    tables: FakeTables
    clock: Clock
    store: FakeStore

    @contextmanager
    def work(self) -> Iterator[FakeWork]:
        """Run a block in a fake unit of work (rolled back, tables and all, on error)."""
        before = copy.deepcopy(self.tables)
        work = FakeWork(self.tables)
        try:
            yield work
        except BaseException:
            self.tables.__dict__.update(before.__dict__)
            raise
        for effect in work.effects:
            effect()


def harness(**settings: Any) -> Harness:
    """Return use-case dependencies over fresh fakes."""
    tables = FakeTables()
    clock = Clock()
    store = FakeStore()
    holder: dict[str, Harness] = {}

    def unit() -> Any:
        return holder["h"].work()

    def once(
        user: str, key: RequestKey | None, status: int, change: Callable[[Work], dict[str, Any]]
    ) -> Outcome:
        with holder["h"].work() as work:
            return Outcome(change(work), status)

    deps = Dependencies(
        unit=unit,
        joined=lambda _session: FakeWork(tables),
        once=once,
        policy=POLICY,
        clock=clock,
        store=store,  # type: ignore[arg-type]
        metrics=ReportingMetrics(),
        settings=ReportingSettings(**settings),
        render_pdf=lambda document: b"%PDF " + document["report_id"].encode(),
        fhir_bundle=lambda version, read, exam: {"resourceType": "Bundle", "id": version.report_id},
        normalize_findings=lambda findings: [{**f, "normalized": True} for f in findings],
    )
    holder["h"] = Harness(deps, tables, clock, store)
    return holder["h"]


def person(user: str, *roles: str, institution: str | None = "th-1") -> Principal:
    """Return a caller."""
    return Principal(user=user, roles=frozenset(roles), institution=institution)


def context(study_uid: str = "1.2.3", exam_type: str = "thyroid", **changes: str) -> ExamContext:
    """Return an exam context at township hospital th-1."""
    base = ExamContext(
        exam_id=f"exam-{study_uid}",
        study_uid=study_uid,
        institution="th-1",
        operator="op-1",
        device_serial="US-1",
        exam_type=exam_type,
        patient_ref="p-1",
    )
    return replace(base, **changes)


def finding(
    code: str = "237495005", *, abnormal: bool = True, confidence: float = 0.95
) -> JsonObject:
    """Return an AI finding as the inference service sends it."""
    return {
        "code": code,
        "display": "Thyroid nodule",
        "confidence": confidence,
        "low_confidence": confidence < 0.8,
        "abnormal": abnormal,
        "model_name": "thyroid-net",
        "model_version": "1.0",
    }


def on_duty(h: Harness, worklist: str, *users: str, role: str = "primary") -> None:
    """Put readers on duty on a worklist for the whole test day."""
    from sonobridge.reporting.domain.assignment import DutyRole

    h.tables.shifts.setdefault(worklist, []).extend(
        Shift(u, worklist, DutyRole(role), T0 - timedelta(hours=1), T0 + timedelta(days=2))
        for u in users
    )


def rank(priority: str) -> int:
    """Return the worklist order rank of a priority."""
    return PRIORITY_RANK[Priority(priority)]


def routed(h: Harness, study_uid: str = "1.2.3", findings: list[JsonObject] | None = None) -> str:
    """Route an exam on an AI result with the given findings; return its read id."""
    from sonobridge.reporting.domain.events import InferenceCompleted
    from sonobridge.reporting.handlers.routing import route_inference_result

    event = InferenceCompleted(
        context=context(study_uid),
        inference_id="inf-1",
        status="completed",
        quality={"acceptable": True, "score": 0.9},
        findings=[finding()] if findings is None else findings,
        models=[{"name": "thyroid-net", "version": "1.0"}],
    )
    with h.work() as work:
        read_id = route_inference_result(work, h.deps, event)
    assert read_id is not None
    return read_id
