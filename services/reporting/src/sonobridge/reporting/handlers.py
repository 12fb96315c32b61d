"""Reporting use cases: route exams, keep the clock, read, sign, amend, alert, notify, export."""

from __future__ import annotations

import base64
import io
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.access import AccessPolicy, Action
from sonobridge.common.auth import Principal
from sonobridge.common.delivery import Outbox
from sonobridge.common.inputs import parse_int
from sonobridge.common.objects.ports import ObjectStore
from sonobridge.common.problems import Conflict, Forbidden, InvalidInput, NotFound
from sonobridge.reporting.adapters.fhir import build_bundle
from sonobridge.reporting.adapters.repository import (
    ReadPosition,
    ReportingRepository,
    after_commit,
    position,
    remember_response,
    reserve_key,
    stored_response,
)
from sonobridge.reporting.domain import reads as read_rules
from sonobridge.reporting.domain.access import may_dispatch, may_read_on, may_view, read_scope
from sonobridge.reporting.domain.assignment import DutyRole, Shift, least_loaded, on_duty
from sonobridge.reporting.domain.clock import EscalationAction, TimerKind, escalate
from sonobridge.reporting.domain.followup import TermSpec, match_terms
from sonobridge.reporting.domain.policy import (
    AiFinding,
    ExamFacts,
    Policy,
    Priority,
    Route,
    Tier,
    WorklistSpec,
    route_exam,
)
from sonobridge.reporting.domain.reads import OPEN_STATES, Read, ReadKind, ReadState
from sonobridge.reporting.domain.templates import draft_for
from sonobridge.reporting.metrics import ReportingMetrics
from sonobridge.reporting.settings import ReportingSettings

log = logging.getLogger(__name__)

SOURCE = "reporting"
SYSTEM = "system:reporting"
Clock = Callable[[], datetime]
VERDICTS = ("agree", "modify", "reject")

_ROUTE_PB = {
    Route.RESCAN: events_pb2.READ_ROUTE_RESCAN,
    Route.SELF_CONFIRM: events_pb2.READ_ROUTE_SELF_CONFIRM,
    Route.EXPERT: events_pb2.READ_ROUTE_EXPERT,
    Route.URGENT: events_pb2.READ_ROUTE_URGENT,
    Route.PROVINCIAL: events_pb2.READ_ROUTE_PROVINCIAL,
}
_PRIORITY_PB = {
    Priority.ROUTINE: events_pb2.READ_PRIORITY_ROUTINE,
    Priority.PRIORITY: events_pb2.READ_PRIORITY_PRIORITY,
    Priority.URGENT: events_pb2.READ_PRIORITY_URGENT,
}
_VERDICT_PB = {
    "agree": events_pb2.AI_VERDICT_AGREE,
    "modify": events_pb2.AI_VERDICT_MODIFY,
    "reject": events_pb2.AI_VERDICT_REJECT,
}
_INFERENCE_STATUS = {
    events_pb2.INFERENCE_STATUS_COMPLETED: "completed",
    events_pb2.INFERENCE_STATUS_PARTIAL: "partial",
    events_pb2.INFERENCE_STATUS_FAILED: "failed",
    events_pb2.INFERENCE_STATUS_UNSPECIFIED: "completed",
}


@dataclass
class Dependencies:
    """What the use cases need, built once by bootstrap."""

    sessions: sessionmaker[Session]
    policy: Policy
    clock: Clock
    outbox: Outbox
    store: ObjectStore
    metrics: ReportingMetrics
    settings: ReportingSettings
    render_pdf: Callable[[dict[str, Any]], bytes]
    access: AccessPolicy = field(default_factory=AccessPolicy)

    @property
    def terms(self) -> list[TermSpec]:
        """The configured follow-up terms."""
        return [TermSpec(t.term, t.words, t.codes) for t in self.settings.followup_terms]


# ---------------------------------------------------------------------------------------------
# Conversions
# ---------------------------------------------------------------------------------------------


def _ts(value: datetime | None) -> Timestamp:
    ts = Timestamp()
    if value is not None:
        ts.FromDatetime(value.astimezone(UTC))
    return ts


def _dt(message: Any, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    value: datetime = getattr(message, field).ToDatetime(tzinfo=UTC)
    return value


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def exam_type_name(value: int) -> str:
    """Return the lower-case exam type name of an ExamType value ('other' when unspecified)."""
    name = events_pb2.ExamType.Name(value).removeprefix("EXAM_TYPE_").lower()
    return "other" if name == "unspecified" else name


def _exam_type_pb(name: str) -> Any:
    return events_pb2.ExamType.Value(f"EXAM_TYPE_{name.upper()}")


def _context(read: dict[str, Any]) -> events_pb2.ExamContext:
    return events_pb2.ExamContext(
        exam_id=read["exam_id"],
        study_instance_uid=read["study_uid"],
        institution_id=read["institution"],
        operator_id=read["operator"],
        device_serial=read["device_serial"],
        exam_type=_exam_type_pb(read["exam_type"]),
        patient_ref=read["patient_ref"],
    )


def finding_dict(f: events_pb2.Finding) -> dict[str, Any]:
    """Return a Finding as a JSON-safe dict."""
    return json_format.MessageToDict(
        f, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def finding_pb(d: dict[str, Any]) -> events_pb2.Finding:
    """Return a Finding message from its dict form."""
    return json_format.ParseDict(d, events_pb2.Finding(), ignore_unknown_fields=True)


def _ai_findings(read: dict[str, Any]) -> list[AiFinding]:
    return [
        AiFinding(
            code=f.get("code", ""),
            display=f.get("display", ""),
            confidence=float(f.get("confidence", 0.0)),
            low_confidence=bool(f.get("low_confidence", False)),
            abnormal=bool(f.get("abnormal", False)),
            model_name=f.get("model_name", ""),
            model_version=f.get("model_version", ""),
        )
        for f in read["ai_findings"]
    ]


def _domain_read(read: dict[str, Any]) -> Read:
    return Read(
        read_id=read["read_id"],
        study_uid=read["study_uid"],
        institution=read["institution"],
        route=Route(read["route"]),
        worklist=read["worklist"],
        priority=Priority(read["priority"]),
        state=ReadState(read["state"]),
        assigned_to=read["assigned_to"],
        due_at=read["due_at"],
        escalation_level=read["escalation_level"],
    )


def _payload(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


# ---------------------------------------------------------------------------------------------
# Routing (events in)
# ---------------------------------------------------------------------------------------------


def record_exam_completed(session: Session, deps: Dependencies, msg: Any) -> None:
    """Remember a completed exam; if AI does not answer in time, a timer routes it without AI."""
    ctx = msg.context
    study = ctx.study_instance_uid
    if not study:
        raise InvalidInput("ExamCompleted has no study_instance_uid")
    repo = ReportingRepository(session)
    now = deps.clock()
    completed_at = _dt(msg, "completed_at")
    added = repo.add_exam(
        {
            "study_uid": study,
            "exam_id": ctx.exam_id,
            "institution": ctx.institution_id,
            "operator": ctx.operator_id,
            "device_serial": ctx.device_serial,
            "exam_type": exam_type_name(ctx.exam_type),
            "patient_ref": ctx.patient_ref,
            "completed_at": completed_at,
            "received_at": now,
            "instances": [
                json_format.MessageToDict(i, preserving_proto_field_name=True)
                for i in msg.instances
            ],
        }
    )
    if not added:
        return
    existing = repo.read_for_study(study)
    if existing is not None:
        if existing["exam_completed_at"] is None:
            repo.update_read(existing["read_id"], exam_completed_at=completed_at or now)
        return
    fire_at = now + timedelta(minutes=deps.policy.inference_wait_minutes)
    repo.arm_timer(TimerKind.INFERENCE_WAIT.value, study, fire_at, now)


def route_inference_result(session: Session, deps: Dependencies, msg: Any) -> str | None:
    """Route an exam on its AI result; a redelivered or repeated result creates no second read."""
    ctx = msg.context
    if not ctx.study_instance_uid:
        raise InvalidInput("InferenceCompleted has no study_instance_uid")
    repo = ReportingRepository(session)
    existing = repo.read_for_study(ctx.study_instance_uid)
    if existing is not None:
        return None
    exam = repo.exam(ctx.study_instance_uid)
    quality = msg.exam_quality if msg.HasField("exam_quality") else None
    status = _INFERENCE_STATUS.get(msg.status, "completed")
    ai: dict[str, Any] = {
        "inference_id": msg.inference_id or None,
        "inference_status": status,
        "exam_quality": json_format.MessageToDict(quality, preserving_proto_field_name=True)
        if quality is not None
        else None,
        "ai_findings": [finding_dict(f) for f in msg.findings],
        "ai_models": [
            json_format.MessageToDict(m, preserving_proto_field_name=True) for m in msg.models
        ],
    }
    context = {
        "exam_id": ctx.exam_id,
        "study_uid": ctx.study_instance_uid,
        "institution": ctx.institution_id,
        "operator": ctx.operator_id,
        "device_serial": ctx.device_serial,
        "exam_type": exam_type_name(ctx.exam_type),
        "patient_ref": ctx.patient_ref,
    }
    facts = ExamFacts(
        exam_id=ctx.exam_id or ctx.study_instance_uid,
        exam_type=context["exam_type"],
        institution=ctx.institution_id,
        operator=ctx.operator_id,
        inference_status=status,
        quality_acceptable=quality.acceptable if quality is not None else None,
        quality_score=quality.score if quality is not None else None,
        findings=[
            AiFinding(
                f.code,
                f.display,
                f.confidence,
                f.low_confidence,
                f.abnormal,
                f.model_name,
                f.model_version,
            )
            for f in msg.findings
        ],
    )
    completed = exam["completed_at"] if exam else None
    return _create_read(session, deps, context, ai, facts, deps.clock(), completed)


def route_without_ai(session: Session, deps: Dependencies, study_uid: str, at: datetime) -> None:
    """Route an exam whose AI result never came, from what ExamCompleted said."""
    repo = ReportingRepository(session)
    if repo.read_for_study(study_uid) is not None:
        return
    exam = repo.exam(study_uid)
    if exam is None:
        return
    context = {
        k: exam[k]
        for k in ("exam_id", "institution", "operator", "device_serial", "exam_type", "patient_ref")
    }
    context["study_uid"] = study_uid
    ai: dict[str, Any] = {
        "inference_id": None,
        "inference_status": "missing",
        "exam_quality": None,
        "ai_findings": [],
        "ai_models": [],
    }
    facts = ExamFacts(
        exam_id=exam["exam_id"] or study_uid,
        exam_type=exam["exam_type"],
        institution=exam["institution"],
        operator=exam["operator"],
        inference_status="missing",
    )
    _create_read(session, deps, context, ai, facts, at, exam["completed_at"])


def _create_read(
    session: Session,
    deps: Dependencies,
    context: dict[str, Any],
    ai: dict[str, Any],
    facts: ExamFacts,
    now: datetime,
    exam_completed_at: datetime | None,
) -> str:
    policy = deps.policy
    routing = route_exam(policy, facts)
    spec = policy.worklist(routing.worklist)
    repo = ReportingRepository(session)
    read_id = str(uuid.uuid4())
    rescan = routing.route is Route.RESCAN
    due = None if rescan or not spec.clocked else routing.due_at(policy, now)
    assignee = None
    if not rescan:
        assignee = _pick_reader(repo, spec, DutyRole.PRIMARY, now, context["institution"])
    values = {
        **context,
        **ai,
        "read_id": read_id,
        "kind": ReadKind.PRIMARY.value,
        "route": routing.route.value,
        "worklist": routing.worklist,
        "priority": routing.priority.value,
        "state": (ReadState.RESCAN_REQUESTED if rescan else ReadState.QUEUED).value,
        "assigned_to": assignee,
        "created_at": now,
        "due_at": due,
        "first_due_at": due,
        "exam_completed_at": exam_completed_at,
        "escalation_level": 0,
        "policy_version": routing.policy_version,
        "rule": routing.rule,
        "reason": routing.reason,
        "audit_sampled": routing.audit_sampled,
    }
    repo.add_read(values)
    repo.add_history(
        read_id,
        at=now,
        kind="routed",
        actor=SYSTEM,
        worklist=routing.worklist,
        assigned_to=assignee,
        detail=f"{routing.rule}: {routing.reason}",
    )
    if due is not None:
        repo.arm_timer(TimerKind.TARGET.value, read_id, due, now)
    _announce_routing(session, deps, values, now)
    route = routing.route.value
    after_commit(session, lambda: deps.metrics.reads_routed.labels(route).inc())
    return read_id


def _announce_routing(
    session: Session, deps: Dependencies, read: dict[str, Any], now: datetime
) -> None:
    repo = ReportingRepository(session)
    message = events_pb2.ReportRouted(
        context=_context(read),
        read_id=read["read_id"],
        route=_ROUTE_PB[Route(read["route"])],
        worklist=read["worklist"],
        priority=_PRIORITY_PB[Priority(read["priority"])],
        assigned_to=read["assigned_to"] or "",
        policy_version=read["policy_version"],
        reason=read["reason"],
        routed_at=_ts(now),
    )
    if read["due_at"] is not None:
        message.due_at.CopyFrom(_ts(read["due_at"]))
    deps.outbox.emit(session, message, source=SOURCE, key=read["study_uid"])
    _queue_webhooks(repo, deps, "report.routed", _payload(message), now)
    payload = {
        "read_id": read["read_id"],
        "worklist": read["worklist"],
        "priority": read["priority"],
        "route": read["route"],
        "reason": read["reason"],
        "due_at": _iso(read["due_at"]),
    }
    if read["route"] == Route.RESCAN.value:
        quality = read.get("exam_quality") or {}
        repo.notify(
            kind="rescan_requested",
            at=now,
            user=read["operator"],
            payload={
                **payload,
                "advice": quality.get("advice", ""),
                "study_instance_uid": read["study_uid"],
            },
        )
    elif read["assigned_to"]:
        repo.notify(kind="read_assigned", at=now, user=read["assigned_to"], payload=payload)


def _pick_reader(
    repo: ReportingRepository,
    spec: WorklistSpec,
    role: DutyRole,
    at: datetime,
    institution: str,
    exclude: Iterable[str] = (),
) -> str | None:
    shifts = repo.shifts(spec.name)
    scope = institution if spec.institution_scoped else None
    candidates = on_duty(shifts, spec.name, role, at, institution=scope)
    return cast(str | None, least_loaded(candidates, repo.open_load(), exclude=exclude))


PROBE_ADVICE = "probe under repair: consider image quality"


def flag_reads_of_faulty_probe(session: Session, deps: Dependencies, msg: Any) -> int:
    """Flag the open reads of exams from a probe that just got a ticket; tell their readers."""
    serial = msg.device_serial
    if not serial or not msg.ticket_id:
        raise InvalidInput("TicketOpened needs device_serial and ticket_id")
    repo = ReportingRepository(session)
    at = _dt(msg, "opened_at") or deps.clock()
    detail = f"ticket {msg.ticket_id}: {msg.symptom or 'fault reported'}; {PROBE_ADVICE}"
    flagged = 0
    for read in repo.reads(states=OPEN_STATES, device_serial=serial):
        # A re-published ticket event (new event id) must not flag a read twice.
        if repo.has_history(read["read_id"], kind="probe_ticket", detail=detail):
            continue
        repo.add_history(
            read["read_id"],
            at=at,
            kind="probe_ticket",
            actor=SYSTEM,
            worklist=read["worklist"],
            assigned_to=read["assigned_to"],
            detail=detail,
        )
        if read["assigned_to"]:
            repo.notify(
                kind="probe_under_repair",
                at=at,
                user=read["assigned_to"],
                payload={
                    "read_id": read["read_id"],
                    "study_instance_uid": read["study_uid"],
                    "device_serial": serial,
                    "ticket_id": msg.ticket_id,
                    "symptom": msg.symptom,
                    "advice": PROBE_ADVICE,
                },
            )
        flagged += 1
    return flagged


# ---------------------------------------------------------------------------------------------
# The clock
# ---------------------------------------------------------------------------------------------


def fire_due_timers(deps: Dependencies, limit: int = 200) -> int:
    """Fire every timer due now, each in its own transaction that also marks it fired."""
    fired = 0
    while True:
        now = deps.clock()
        with deps.sessions.begin() as session:
            ids = ReportingRepository(session).due_timer_ids(now, limit)
        if not ids:
            return fired
        for timer_id in ids:
            with deps.sessions.begin() as session:
                repo = ReportingRepository(session)
                timer = repo.claim_timer(timer_id)
                if timer is None:
                    continue
                _apply_timer(session, deps, timer)
                if not repo.mark_fired(timer_id, now):
                    raise Conflict(f"timer {timer_id} fired elsewhere; rolling back")
                fired += 1


def _apply_timer(session: Session, deps: Dependencies, timer: dict[str, Any]) -> None:
    kind = TimerKind(timer["kind"])
    at = timer["fire_at"]
    if kind is TimerKind.INFERENCE_WAIT:
        route_without_ai(session, deps, timer["subject"], at)
        return
    repo = ReportingRepository(session)
    read = repo.read(timer["subject"], lock=True)
    if read is None or read["state"] not in OPEN_STATES:
        return
    policy = deps.policy
    priority = Priority(read["priority"])
    if kind is TimerKind.TARGET and read["escalation_level"] == 0:
        repo.add_history(
            read["read_id"],
            at=at,
            kind="sla_breached",
            actor=SYSTEM,
            worklist=read["worklist"],
            assigned_to=read["assigned_to"],
        )
        after_commit(session, lambda: deps.metrics.sla_breaches.labels(priority.value).inc())
    step = escalate(policy, worklist=read["worklist"], priority=priority, fired=kind, at=at)
    level = read["escalation_level"] + 1
    base = {
        "read_id": read["read_id"],
        "worklist": read["worklist"],
        "priority": read["priority"],
        "study_instance_uid": read["study_uid"],
    }
    if step.action is EscalationAction.TO_BACKUP:
        spec = policy.worklist(read["worklist"])
        current = read["assigned_to"]
        backup = _pick_reader(
            repo,
            spec,
            DutyRole.BACKUP,
            at,
            read["institution"],
            exclude=[current] if current else [],
        )
        claimed = read["state"] == ReadState.CLAIMED.value
        assignee = current if claimed or backup is None else backup
        repo.update_read(read["read_id"], assigned_to=assignee, escalation_level=level)
        repo.add_history(
            read["read_id"],
            at=at,
            kind="escalated_backup",
            actor=SYSTEM,
            worklist=read["worklist"],
            assigned_to=assignee,
            detail=f"backup {backup or 'none on duty'}"
            + (f"; claimed by {current}" if claimed else ""),
        )
        if backup:
            repo.notify(
                kind="read_escalated",
                at=at,
                user=backup,
                payload={**base, "reason": "turnaround target passed"},
            )
    elif step.action is EscalationAction.TO_NEXT_TIER:
        spec = policy.worklist(step.worklist)
        route = Route.PROVINCIAL if spec.tier is Tier.PROVINCIAL else Route.EXPERT
        state = ReadState.ESCALATED if route is Route.PROVINCIAL else ReadState.QUEUED
        assignee = _pick_reader(repo, spec, DutyRole.PRIMARY, at, read["institution"])
        reason = f"escalated from {read['worklist']}: unsigned past target and backup grace"
        repo.update_read(
            read["read_id"],
            worklist=step.worklist,
            route=route.value,
            state=state.value,
            assigned_to=assignee,
            due_at=step.new_due_at,
            escalation_level=level,
            reason=reason,
        )
        repo.add_history(
            read["read_id"],
            at=at,
            kind="escalated_tier",
            actor=SYSTEM,
            worklist=step.worklist,
            assigned_to=assignee,
            detail=reason,
        )
        updated = repo.read(read["read_id"])
        assert updated is not None
        _announce_routing(session, deps, updated, at)
    else:
        repo.add_history(
            read["read_id"],
            at=at,
            kind="escalation_exhausted",
            actor=SYSTEM,
            worklist=read["worklist"],
            assigned_to=read["assigned_to"],
        )
        repo.notify(
            kind="read_unsigned",
            at=at,
            role="admin",
            payload={**base, "reason": "no tier left to escalate to"},
        )
        return
    if step.next_timer is not None and step.next_fire_at is not None:
        repo.arm_timer(step.next_timer.value, read["read_id"], step.next_fire_at, at)


def refresh_worklist_depth(deps: Dependencies) -> None:
    """Set the worklist depth gauge from the database."""
    with deps.sessions.begin() as session:
        depth = ReportingRepository(session).depth_by_worklist()
    for spec in deps.policy.worklists:
        deps.metrics.worklist_depth.labels(spec.name).set(depth.get(spec.name, 0))


# ---------------------------------------------------------------------------------------------
# Worklists and reads (experts and physicians)
# ---------------------------------------------------------------------------------------------


def _spec(deps: Dependencies, name: str) -> WorklistSpec | None:
    try:
        return deps.policy.worklist(name)
    except KeyError:
        return None


def _visible_read(
    repo: ReportingRepository,
    deps: Dependencies,
    principal: Principal,
    read_id: str,
    *,
    lock: bool = False,
) -> dict[str, Any]:
    read = repo.read(read_id, lock=lock)
    if read is None or not may_view(
        principal, _spec(deps, read["worklist"]), read["institution"], deps.access
    ):
        raise NotFound(f"no read {read_id}")
    return cast(dict[str, Any], read)


def _audit(
    repo: ReportingRepository,
    deps: Dependencies,
    principal: Principal,
    action: str,
    *,
    read_id: str | None = None,
    report_id: str | None = None,
    detail: str = "",
) -> None:
    repo.audit(
        at=deps.clock(),
        user=principal.user,
        roles=principal.roles,
        action=action,
        read_id=read_id,
        report_id=report_id,
        detail=detail,
    )


def list_worklists(deps: Dependencies, principal: Principal) -> list[dict[str, Any]]:
    """Return the worklists with how many open reads the caller may see on each."""
    scope = read_scope(principal, deps.policy.worklists, deps.access)
    with deps.sessions.begin() as session:
        depth = ReportingRepository(session).open_depth(scope)
    return [
        {
            "name": spec.name,
            "tier": spec.tier.value,
            "specialty": spec.specialty,
            "signer_roles": spec.signer_roles,
            "depth": depth.get(spec.name, 0),
        }
        for spec in deps.policy.worklists
    ]


def encode_read_cursor(at: ReadPosition) -> str:
    """Return an opaque cursor for a place in worklist order."""
    rank, due, read_id = at
    raw = json.dumps([rank, due.astimezone(UTC).isoformat(), read_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_read_cursor(cursor: str | None) -> ReadPosition | None:
    """Return the place in a worklist cursor; InvalidInput when it is not one of ours."""
    if not cursor:
        return None
    try:
        rank, due, read_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        at = datetime.fromisoformat(due)
        if not isinstance(rank, int) or not isinstance(read_id, str) or at.tzinfo is None:
            raise ValueError(cursor)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidInput("invalid cursor") from exc
    return rank, at, read_id


def list_reads(
    deps: Dependencies,
    principal: Principal,
    *,
    worklist: str | None,
    states: Sequence[str] | None,
    assigned_to: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """Return a page of visible reads, most urgent first, and the cursor of the next page."""
    if worklist is not None and _spec(deps, worklist) is None:
        raise NotFound(f"no worklist {worklist}")
    wanted = list(states) if states else ["queued", "claimed", "escalated"]
    bad = [s for s in wanted if s not in {st.value for st in ReadState}]
    if bad:
        raise InvalidInput(f"unknown read states {bad}")
    after = decode_read_cursor(cursor)
    scope = read_scope(principal, deps.policy.worklists, deps.access)
    with deps.sessions.begin() as session:
        repo = ReportingRepository(session)
        rows = repo.read_page(
            scope=scope,
            worklists=[worklist] if worklist else None,
            states=wanted,
            assigned_to=assigned_to,
            after=after,
            limit=limit + 1,
        )
        page = rows[:limit]
        _audit(
            repo,
            deps,
            principal,
            "list_reads",
            detail=f"worklist={worklist} states={','.join(wanted)} n={len(page)}",
        )
    following = encode_read_cursor(position(page[-1])) if len(rows) > limit else None
    return [read_summary(r, deps.clock()) for r in page], following


def read_summary(read: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Return the worklist view of a read."""
    due = read["due_at"]
    return {
        "read_id": read["read_id"],
        "study_instance_uid": read["study_uid"],
        "exam_id": read["exam_id"],
        "exam_type": read["exam_type"],
        "institution_id": read["institution"],
        "kind": read["kind"],
        "route": read["route"],
        "worklist": read["worklist"],
        "priority": read["priority"],
        "state": read["state"],
        "assigned_to": read["assigned_to"],
        "created_at": _iso(read["created_at"]),
        "due_at": _iso(due),
        "overdue": bool(due and read["state"] in OPEN_STATES and now > due),
        "escalation_level": read["escalation_level"],
        "policy_version": read["policy_version"],
        "reason": read["reason"],
        "report_id": read["report_id"],
        "signed_at": _iso(read["signed_at"]),
    }


def view_read(deps: Dependencies, principal: Principal, read_id: str) -> dict[str, Any]:
    """Return the exam view: the read, its AI results, frame links, draft and verdicts."""
    with deps.sessions.begin() as session:
        repo = ReportingRepository(session)
        read = _visible_read(repo, deps, principal, read_id)
        exam = repo.exam(read["study_uid"])
        draft = repo.draft(read_id)
        verdicts = repo.verdicts(read_id)
        history = repo.history(read_id)
        _audit(repo, deps, principal, "view_read", read_id=read_id, report_id=read["report_id"])
    base = deps.settings.wado_base_url.rstrip("/")
    frames = []
    for inst in (exam or {}).get("instances", []):
        if not inst.get("number_of_frames"):
            continue  # a structured report or a waveform in the exam: no frame to show
        path = (
            f"{base}/studies/{inst['study_instance_uid']}/series/"
            f"{inst['series_instance_uid']}/instances/{inst['sop_instance_uid']}"
        )
        frames.append(
            {
                "sop_instance_uid": inst["sop_instance_uid"],
                "number_of_frames": int(inst["number_of_frames"]),
                "rendered": f"{path}/rendered",
                "first_frame_rendered": f"{path}/frames/1/rendered",
            }
        )
    return {
        **read_summary(read, deps.clock()),
        "patient_ref": read["patient_ref"],
        "operator_id": read["operator"],
        "device_serial": read["device_serial"],
        "inference_status": read["inference_status"],
        "exam_quality": read["exam_quality"],
        "ai_findings": read["ai_findings"],
        "ai_models": read["ai_models"],
        "frames": frames,
        "probe_warnings": [
            {"at": _iso(h["at"]), "detail": h["detail"]}
            for h in history
            if h["kind"] == "probe_ticket"
        ],
        "draft": _draft_view(draft) if draft else None,
        "verdicts": [_verdict_view(v) for v in verdicts],
        "history": [
            {
                "at": _iso(h["at"]),
                "kind": h["kind"],
                "actor": h["actor"],
                "worklist": h["worklist"],
                "assigned_to": h["assigned_to"],
                "detail": h["detail"],
            }
            for h in history
        ],
    }


def _draft_view(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "language": d["language"],
        "title": d["title"],
        "findings_text": d["findings_text"],
        "conclusion": d["conclusion"],
        "findings": d["findings"],
        "revision": d["revision"],
        "updated_by": d["updated_by"],
        "updated_at": _iso(d["updated_at"]),
    }


def _verdict_view(v: dict[str, Any]) -> dict[str, Any]:
    return {
        "finding_code": v["finding_code"],
        "model_name": v["model_name"],
        "model_version": v["model_version"],
        "verdict": v["verdict"],
        "comment": v["comment"],
        "decided_by": v["decided_by"],
    }


def _change_read(
    deps: Dependencies,
    principal: Principal,
    read_id: str,
    action: str,
    change: Callable[[ReportingRepository, dict[str, Any], WorklistSpec], Read],
    key: RequestKey | None,
) -> Outcome:
    now = deps.clock()

    def work(session: Session) -> dict[str, Any]:
        repo = ReportingRepository(session)
        read = _visible_read(repo, deps, principal, read_id, lock=True)
        spec = deps.policy.worklist(read["worklist"])
        updated = change(repo, read, spec)
        repo.update_read(read_id, state=updated.state.value, assigned_to=updated.assigned_to)
        repo.add_history(
            read_id,
            at=now,
            kind=action,
            actor=principal.user,
            worklist=read["worklist"],
            assigned_to=updated.assigned_to,
        )
        _audit(repo, deps, principal, action, read_id=read_id)
        if action == "reassigned" and updated.assigned_to:
            repo.notify(
                kind="read_assigned",
                at=now,
                user=updated.assigned_to,
                payload={
                    "read_id": read_id,
                    "worklist": read["worklist"],
                    "priority": read["priority"],
                    "by": principal.user,
                },
            )
        fresh = repo.read(read_id)
        assert fresh is not None
        return read_summary(fresh, now)

    return once(deps, principal, key, 200, work)


def claim_read(
    deps: Dependencies, principal: Principal, read_id: str, key: RequestKey | None = None
) -> Outcome:
    """Take a read to work on it."""

    def change(repo: ReportingRepository, read: dict[str, Any], spec: WorklistSpec) -> Read:
        if not may_read_on(principal, spec, read["institution"]):
            raise Forbidden(
                f"reads on {spec.name} need one of the roles "
                f"{', '.join(spec.signer_roles) or '(none)'}"
            )
        return read_rules.claim(_domain_read(read), principal.user)

    return _change_read(deps, principal, read_id, "claimed", change, key)


def release_read(
    deps: Dependencies, principal: Principal, read_id: str, key: RequestKey | None = None
) -> Outcome:
    """Put a claimed read back on its worklist."""

    def change(repo: ReportingRepository, read: dict[str, Any], spec: WorklistSpec) -> Read:
        return read_rules.release(
            _domain_read(read), principal.user, may_override=may_dispatch(principal)
        )

    return _change_read(deps, principal, read_id, "released", change, key)


def reassign_read(
    deps: Dependencies,
    principal: Principal,
    read_id: str,
    to_user: str,
    key: RequestKey | None = None,
) -> Outcome:
    """Give a read to another reader (dispatchers), or pass one's own claim on."""
    if not to_user:
        raise InvalidInput("to_user must not be empty")

    def change(repo: ReportingRepository, read: dict[str, Any], spec: WorklistSpec) -> Read:
        own = read["state"] == ReadState.CLAIMED.value and read["assigned_to"] == principal.user
        if not (may_dispatch(principal) or own):
            raise Forbidden("only a dispatcher or the reader holding the claim may reassign")
        rostered = {s.user for s in repo.shifts(spec.name)}
        if to_user not in rostered:
            raise InvalidInput(f"{to_user} is not on the roster of {spec.name}")
        return read_rules.reassign(_domain_read(read), to_user)

    return _change_read(deps, principal, read_id, "reassigned", change, key)


# ---------------------------------------------------------------------------------------------
# Drafts, verdicts, signing, amending
# ---------------------------------------------------------------------------------------------


def _require_reader(principal: Principal, deps: Dependencies, read: dict[str, Any]) -> None:
    spec = deps.policy.worklist(read["worklist"])
    if not may_read_on(principal, spec, read["institution"]):
        raise Forbidden(
            f"reports on {spec.name} need one of the roles "
            f"{', '.join(spec.signer_roles) or '(none)'}"
        )


def create_draft(
    deps: Dependencies,
    principal: Principal,
    read_id: str,
    language: str,
    key: RequestKey | None = None,
) -> Outcome:
    """Start a draft from the exam type's template and the AI findings (replaces a draft)."""
    now = deps.clock()

    def work(session: Session) -> dict[str, Any]:
        repo = ReportingRepository(session)
        read = _visible_read(repo, deps, principal, read_id, lock=True)
        _require_reader(principal, deps, read)
        if read["state"] not in OPEN_STATES:
            raise Conflict(f"read {read_id} is {read['state']}; no draft can be started")
        draft = draft_for(read["exam_type"], language, _ai_findings(read))
        previous = repo.draft(read_id)
        values = {
            "read_id": read_id,
            "language": draft.language,
            "title": draft.title,
            "findings_text": draft.findings_text,
            "conclusion": draft.conclusion,
            "findings": [f for f in read["ai_findings"]],
            "updated_by": principal.user,
            "updated_at": now,
            "revision": (previous["revision"] + 1) if previous else 1,
        }
        repo.put_draft(values)
        _audit(repo, deps, principal, "draft_created", read_id=read_id, detail=language)
        return _draft_view(values)

    return once(deps, principal, key, 201, work)


def edit_draft(
    deps: Dependencies,
    principal: Principal,
    read_id: str,
    *,
    changes: dict[str, Any],
    revision: int | None,
) -> dict[str, Any]:
    """Change a draft's text or findings; `revision` guards against overwriting another edit."""
    now = deps.clock()
    with deps.sessions.begin() as session:
        repo = ReportingRepository(session)
        read = _visible_read(repo, deps, principal, read_id, lock=True)
        _require_reader(principal, deps, read)
        draft = repo.draft(read_id)
        if draft is None:
            raise NotFound(f"read {read_id} has no draft; create one first")
        if revision is not None and revision != draft["revision"]:
            raise Conflict(f"draft is at revision {draft['revision']}, not {revision}")
        if "findings" in changes and changes["findings"] is not None:
            changes["findings"] = [finding_dict(finding_pb(f)) for f in changes["findings"]]
        values = {
            **draft,
            **{k: v for k, v in changes.items() if v is not None},
            "updated_by": principal.user,
            "updated_at": now,
            "revision": draft["revision"] + 1,
        }
        repo.put_draft(values)
        _audit(
            repo,
            deps,
            principal,
            "draft_edited",
            read_id=read_id,
            detail=",".join(sorted(k for k, v in changes.items() if v is not None)),
        )
    return _draft_view(values)


def record_verdicts(
    deps: Dependencies, principal: Principal, read_id: str, verdicts: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Store the reader's agree/modify/reject on AI findings, against the model version."""
    now = deps.clock()
    with deps.sessions.begin() as session:
        repo = ReportingRepository(session)
        read = _visible_read(repo, deps, principal, read_id, lock=True)
        _require_reader(principal, deps, read)
        if read["state"] not in OPEN_STATES:
            raise Conflict(f"read {read_id} is {read['state']}; verdicts are closed")
        findings = {(f.get("code", ""), f.get("model_name", "")): f for f in read["ai_findings"]}
        by_code = {f.get("code", ""): f for f in read["ai_findings"]}
        for v in verdicts:
            if v["verdict"] not in VERDICTS:
                raise InvalidInput(f"verdict must be one of {', '.join(VERDICTS)}")
            key = (v["finding_code"], v.get("model_name") or "")
            finding = findings.get(key) or (
                by_code.get(v["finding_code"]) if not v.get("model_name") else None
            )
            if finding is None:
                raise InvalidInput(f"read {read_id} has no AI finding {v['finding_code']!r}")
            repo.put_verdict(
                {
                    "read_id": read_id,
                    "finding_code": v["finding_code"],
                    "model_name": finding.get("model_name", ""),
                    "model_version": finding.get("model_version", ""),
                    "verdict": v["verdict"],
                    "comment": v.get("comment") or "",
                    "decided_by": principal.user,
                    "decided_at": now,
                }
            )
        _audit(
            repo,
            deps,
            principal,
            "verdicts_recorded",
            read_id=read_id,
            detail=",".join(f"{v['finding_code']}={v['verdict']}" for v in verdicts),
        )
        stored = repo.verdicts(read_id)
    return [_verdict_view(v) for v in stored]


def sign_read(
    deps: Dependencies, principal: Principal, read_id: str, key: RequestKey | None = None
) -> Outcome:
    """Sign the read's draft as report version 1: events, PDF, FHIR, webhooks, follow-up."""
    now = deps.clock()

    def work(session: Session) -> dict[str, Any]:
        repo = ReportingRepository(session)
        read = _visible_read(repo, deps, principal, read_id, lock=True)
        _require_reader(principal, deps, read)
        read_rules.ready_to_sign(_domain_read(read), principal.user)
        draft = repo.draft(read_id)
        if draft is None:
            raise Conflict(f"read {read_id} has no draft to sign")
        verdicts = repo.verdicts(read_id)
        decided = {(v["finding_code"], v["model_name"]) for v in verdicts}
        missing = [
            f.get("code", "")
            for f in read["ai_findings"]
            if (f.get("code", ""), f.get("model_name", "")) not in decided
        ]
        if missing:
            raise InvalidInput(f"give a verdict (agree/modify/reject) on AI findings {missing}")
        report_id = str(uuid.uuid4())
        version = _store_version(
            session,
            deps,
            read,
            report_id=report_id,
            version=1,
            draft=draft,
            verdicts=verdicts,
            signer=principal.user,
            at=now,
            amended_from=0,
            reason="",
        )
        repo.update_read(read_id, state=ReadState.SIGNED.value, report_id=report_id, signed_at=now)
        repo.add_history(
            read_id,
            at=now,
            kind="signed",
            actor=principal.user,
            worklist=read["worklist"],
            assigned_to=principal.user,
            detail=f"report {report_id} v1",
        )
        repo.delete_draft(read_id)
        _audit(repo, deps, principal, "signed", read_id=read_id, report_id=report_id)
        if read["audit_sampled"] and read["kind"] == ReadKind.PRIMARY.value:
            _open_audit_read(session, deps, read, now)
        started = read["exam_completed_at"] or read["created_at"]
        seconds = max(0.0, (now - started).total_seconds())
        priority, institution = read["priority"], read["institution"]

        def count() -> None:
            deps.metrics.turnaround.labels(priority, institution).observe(seconds)
            for v in verdicts:
                deps.metrics.ai_verdicts.labels(
                    v["model_name"], v["model_version"], v["verdict"]
                ).inc()

        after_commit(session, count)
        return version_view(version)

    return once(deps, principal, key, 201, work)


def amend_report(
    deps: Dependencies,
    principal: Principal,
    report_id: str,
    *,
    conclusion: str | None,
    findings_text: str | None,
    findings: list[dict[str, Any]] | None,
    reason: str,
    key: RequestKey | None = None,
) -> Outcome:
    """Sign a new version of a report; earlier versions stay as they were."""
    if not reason.strip():
        raise InvalidInput("an amendment needs a reason")
    now = deps.clock()

    def work(session: Session) -> dict[str, Any]:
        repo = ReportingRepository(session)
        versions = repo.report_versions(report_id)
        if not versions:
            raise NotFound(f"no report {report_id}")
        latest = versions[-1]
        read = _visible_read(repo, deps, principal, latest["read_id"], lock=True)
        _require_reader(principal, deps, read)
        draft = {
            "language": latest["language"],
            "title": latest["title"],
            "findings_text": findings_text
            if findings_text is not None
            else latest["findings_text"],
            "conclusion": conclusion if conclusion is not None else latest["conclusion"],
            "findings": [finding_dict(finding_pb(f)) for f in findings]
            if findings is not None
            else latest["findings"],
        }
        version = _store_version(
            session,
            deps,
            read,
            report_id=report_id,
            version=latest["version"] + 1,
            draft=draft,
            verdicts=None,
            previous_agreement=latest["ai_agreement"],
            signer=principal.user,
            at=now,
            amended_from=latest["version"],
            reason=reason,
        )
        repo.add_history(
            read["read_id"],
            at=now,
            kind="amended",
            actor=principal.user,
            worklist=read["worklist"],
            assigned_to=read["assigned_to"],
            detail=f"report {report_id} v{version['version']}: {reason}",
        )
        _audit(
            repo,
            deps,
            principal,
            "amended",
            read_id=read["read_id"],
            report_id=report_id,
            detail=reason,
        )
        return version_view(version)

    return once(deps, principal, key, 201, work)


def _store_version(
    session: Session,
    deps: Dependencies,
    read: dict[str, Any],
    *,
    report_id: str,
    version: int,
    draft: dict[str, Any],
    verdicts: list[dict[str, Any]] | None,
    signer: str,
    at: datetime,
    amended_from: int,
    reason: str,
    previous_agreement: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    repo = ReportingRepository(session)
    agreement = previous_agreement or []
    if verdicts is not None:
        agreement = [
            {
                "finding_code": v["finding_code"],
                "model_name": v["model_name"],
                "model_version": v["model_version"],
                "verdict": v["verdict"],
                "comment": v["comment"],
            }
            for v in verdicts
        ]
    pdf_key = f"reports/{report_id}/v{version}.pdf"
    json_key = f"reports/{report_id}/v{version}.json"
    values = {
        "report_id": report_id,
        "version": version,
        "read_id": read["read_id"],
        "study_uid": read["study_uid"],
        "institution": read["institution"],
        "language": draft["language"],
        "title": draft["title"],
        "findings_text": draft["findings_text"],
        "conclusion": draft["conclusion"],
        "findings": draft["findings"],
        "ai_agreement": agreement,
        "signed_by": signer,
        "signed_at": at,
        "amended_from_version": amended_from,
        "amend_reason": reason,
        "pdf_key": pdf_key,
        "json_key": json_key,
    }
    document = report_document(values, read)
    # Objects first: if the commit then fails, a retry writes a new report id, and these orphans
    # are never referenced.
    body = json.dumps(document, ensure_ascii=False, indent=2).encode()
    deps.store.put(json_key, io.BytesIO(body), length=len(body), content_type="application/json")
    pdf = deps.render_pdf(document)
    deps.store.put(pdf_key, io.BytesIO(pdf), length=len(pdf), content_type="application/pdf")
    repo.add_report_version(values)
    signed = events_pb2.ReportSigned(
        context=_context(read),
        report_id=report_id,
        version=version,
        signed_by=signer,
        signed_at=_ts(at),
        pdf_object_key=pdf_key,
        json_object_key=json_key,
        conclusion=draft["conclusion"],
        findings=[finding_pb(f) for f in draft["findings"]],
        ai_agreement=[
            events_pb2.AiAgreement(
                finding_code=a["finding_code"],
                model_name=a["model_name"],
                model_version=a["model_version"],
                verdict=_VERDICT_PB[a["verdict"]],
                comment=a["comment"],
            )
            for a in agreement
        ],
        amended_from_version=amended_from,
        read_id=read["read_id"],
    )
    deps.outbox.emit(session, signed, source=SOURCE, key=read["study_uid"])
    _queue_webhooks(repo, deps, "report.signed", _payload(signed), at)
    if deps.settings.fhir_endpoint:
        exam = repo.exam(read["study_uid"]) or {"instances": []}
        bundle = build_bundle(_fhir_version(values), _fhir_read(read), _fhir_exam(exam))
        repo.add_delivery(
            {
                "channel": "fhir",
                "target": deps.settings.fhir_endpoint,
                "event_type": "report.signed",
                "delivery_id": str(uuid.uuid4()),
                "body": json.dumps(bundle, ensure_ascii=False),
                "attempts": 0,
                "next_attempt_at": at,
                "last_error": "",
            }
        )
    repo.notify(
        kind="report_signed",
        at=at,
        role="operator",
        institution=read["institution"],
        payload={
            "read_id": read["read_id"],
            "report_id": report_id,
            "version": version,
            "study_instance_uid": read["study_uid"],
        },
    )
    _raise_followup(session, deps, read, values, at)
    return values


def _raise_followup(
    session: Session,
    deps: Dependencies,
    read: dict[str, Any],
    version: dict[str, Any],
    at: datetime,
) -> None:
    repo = ReportingRepository(session)
    codes = [f.get("code", "") for f in version["findings"]]
    matched = match_terms([version["findings_text"], version["conclusion"]], codes, deps.terms)
    fresh = [t for t in matched if t not in repo.alerted_terms(version["report_id"])]
    if not fresh:
        return
    alert_id = str(uuid.uuid4())
    repo.add_alert(
        {
            "alert_id": alert_id,
            "report_id": version["report_id"],
            "report_version": version["version"],
            "read_id": read["read_id"],
            "study_uid": read["study_uid"],
            "institution": read["institution"],
            "matched_terms": fresh,
            "state": "open",
            "raised_at": at,
            "note": "",
        }
    )
    message = events_pb2.FollowupAlerted(
        context=_context(read),
        alert_id=alert_id,
        report_id=version["report_id"],
        matched_terms=fresh,
        coordinator_institution_id=read["institution"],
        raised_at=_ts(at),
        report_version=version["version"],
    )
    deps.outbox.emit(session, message, source=SOURCE, key=read["study_uid"])
    _queue_webhooks(repo, deps, "followup.alerted", _payload(message), at)
    repo.notify(
        kind="followup_alert",
        at=at,
        role="coordinator",
        institution=read["institution"],
        payload={
            "alert_id": alert_id,
            "report_id": version["report_id"],
            "matched_terms": fresh,
            "patient_ref": read["patient_ref"],
            "study_instance_uid": read["study_uid"],
        },
    )


def _open_audit_read(
    session: Session, deps: Dependencies, read: dict[str, Any], now: datetime
) -> None:
    policy = deps.policy
    spec = policy.worklist(policy.audit_worklist)
    repo = ReportingRepository(session)
    if repo.read_for_study(read["study_uid"], ReadKind.AUDIT.value) is not None:
        return
    audit_id = str(uuid.uuid4())
    due = now + policy.target(Priority.ROUTINE)
    assignee = _pick_reader(repo, spec, DutyRole.PRIMARY, now, read["institution"])
    values = {
        **{
            k: read[k]
            for k in (
                "study_uid",
                "exam_id",
                "institution",
                "operator",
                "device_serial",
                "exam_type",
                "patient_ref",
                "inference_id",
                "inference_status",
                "exam_quality",
                "ai_findings",
                "ai_models",
                "exam_completed_at",
                "policy_version",
            )
        },
        "read_id": audit_id,
        "kind": ReadKind.AUDIT.value,
        "route": Route.EXPERT.value,
        "worklist": spec.name,
        "priority": Priority.ROUTINE.value,
        "state": ReadState.QUEUED.value,
        "assigned_to": assignee,
        "created_at": now,
        "due_at": due,
        "first_due_at": due,
        "escalation_level": 0,
        "rule": "self-confirm-audit",
        "reason": f"random audit of self-confirmed read {read['read_id']}",
        "audit_sampled": False,
        "audit_of": read["read_id"],
    }
    repo.add_read(values)
    repo.add_history(
        audit_id,
        at=now,
        kind="routed",
        actor=SYSTEM,
        worklist=spec.name,
        assigned_to=assignee,
        detail=values["reason"],
    )
    repo.arm_timer(TimerKind.TARGET.value, audit_id, due, now)
    _announce_routing(session, deps, values, now)


def report_document(version: dict[str, Any], read: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON document of a report version (also the PDF's content)."""
    return {
        "report_id": version["report_id"],
        "version": version["version"],
        "read_id": read["read_id"],
        "language": version["language"],
        "title": version["title"],
        "exam": {
            "study_instance_uid": read["study_uid"],
            "exam_id": read["exam_id"],
            "exam_type": read["exam_type"],
            "institution_id": read["institution"],
            "patient_ref": read["patient_ref"],
            "operator_id": read["operator"],
        },
        "findings_text": version["findings_text"],
        "conclusion": version["conclusion"],
        "findings": version["findings"],
        "ai_agreement": version["ai_agreement"],
        "signed_by": version["signed_by"],
        "signed_at": _iso(version["signed_at"]),
        "amended_from_version": version["amended_from_version"],
        "amend_reason": version["amend_reason"],
    }


def _fhir_version(v: dict[str, Any]) -> dict[str, Any]:
    return {**v, "signed_at": _iso(v["signed_at"])}


def _fhir_read(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "exam_completed_at": _iso(r["exam_completed_at"])}


def _fhir_exam(e: dict[str, Any]) -> dict[str, Any]:
    return {**e, "completed_at": _iso(e.get("completed_at"))}


def version_view(v: dict[str, Any], *, superseded: bool = False) -> dict[str, Any]:
    """Return the API view of one report version."""
    return {
        "report_id": v["report_id"],
        "version": v["version"],
        "read_id": v["read_id"],
        "study_instance_uid": v["study_uid"],
        "institution_id": v["institution"],
        "language": v["language"],
        "title": v["title"],
        "findings_text": v["findings_text"],
        "conclusion": v["conclusion"],
        "findings": v["findings"],
        "ai_agreement": v["ai_agreement"],
        "signed_by": v["signed_by"],
        "signed_at": _iso(v["signed_at"]),
        "amended_from_version": v["amended_from_version"],
        "amend_reason": v["amend_reason"],
        "pdf_object_key": v["pdf_key"],
        "json_object_key": v["json_key"],
        "superseded": superseded,
    }


def _visible_versions(
    repo: ReportingRepository, deps: Dependencies, principal: Principal, report_id: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    versions = repo.report_versions(report_id)
    if not versions:
        raise NotFound(f"no report {report_id}")
    read = repo.read(versions[0]["read_id"])
    if read is None or not may_view(
        principal, _spec(deps, read["worklist"]), read["institution"], deps.access
    ):
        raise NotFound(f"no report {report_id}")
    return versions, read


def get_report(
    deps: Dependencies, principal: Principal, report_id: str, version: int = 0
) -> dict[str, Any]:
    """Return one version of a report (0: the latest) and the list of its versions."""
    with deps.sessions.begin() as session:
        repo = ReportingRepository(session)
        versions, _read = _visible_versions(repo, deps, principal, report_id)
        chosen = (
            versions[-1]
            if version == 0
            else next((v for v in versions if v["version"] == version), None)
        )
        if chosen is None:
            raise NotFound(f"report {report_id} has no version {version}")
        _audit(
            repo,
            deps,
            principal,
            "view_report",
            read_id=chosen["read_id"],
            report_id=report_id,
            detail=f"v{chosen['version']}",
        )
    view = version_view(chosen, superseded=chosen["version"] < versions[-1]["version"])
    view["versions"] = [v["version"] for v in versions]
    return view


def report_object_key(
    deps: Dependencies, principal: Principal, report_id: str, version: int, kind: str
) -> str:
    """Return the object key of a version's PDF or JSON, auditing the access."""
    with deps.sessions.begin() as session:
        repo = ReportingRepository(session)
        versions, _read = _visible_versions(repo, deps, principal, report_id)
        chosen = next((v for v in versions if v["version"] == version), None)
        if chosen is None:
            raise NotFound(f"report {report_id} has no version {version}")
        _audit(
            repo,
            deps,
            principal,
            f"download_{kind}",
            read_id=chosen["read_id"],
            report_id=report_id,
            detail=f"v{version}",
        )
    return str(chosen["pdf_key"] if kind == "pdf" else chosen["json_key"])


def report_fhir(
    deps: Dependencies, principal: Principal, report_id: str, version: int = 0
) -> dict[str, Any]:
    """Return the FHIR Bundle of a report version."""
    with deps.sessions.begin() as session:
        repo = ReportingRepository(session)
        versions, read = _visible_versions(repo, deps, principal, report_id)
        chosen = (
            versions[-1]
            if version == 0
            else next((v for v in versions if v["version"] == version), None)
        )
        if chosen is None:
            raise NotFound(f"report {report_id} has no version {version}")
        exam = repo.exam(read["study_uid"]) or {"instances": []}
        _audit(
            repo,
            deps,
            principal,
            "export_fhir",
            read_id=read["read_id"],
            report_id=report_id,
            detail=f"v{chosen['version']}",
        )
    return cast(
        dict[str, Any], build_bundle(_fhir_version(chosen), _fhir_read(read), _fhir_exam(exam))
    )


# ---------------------------------------------------------------------------------------------
# Follow-up alerts, notifications, rosters, audit
# ---------------------------------------------------------------------------------------------


def _alert_view(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "alert_id": a["alert_id"],
        "report_id": a["report_id"],
        "report_version": a["report_version"],
        "read_id": a["read_id"],
        "study_instance_uid": a["study_uid"],
        "institution_id": a["institution"],
        "matched_terms": a["matched_terms"],
        "state": a["state"],
        "raised_at": _iso(a["raised_at"]),
        "acknowledged_by": a["acknowledged_by"],
        "acknowledged_at": _iso(a["acknowledged_at"]),
        "closed_by": a["closed_by"],
        "closed_at": _iso(a["closed_at"]),
        "note": a["note"],
    }


def _alert_scope(deps: Dependencies, principal: Principal) -> frozenset[str] | None:
    if not principal.has_role("coordinator", "physician", "expert", "admin"):
        raise Forbidden("follow-up alerts are for coordinators, physicians and admins")
    return deps.access.readable_institutions(principal)


def list_alerts(
    deps: Dependencies, principal: Principal, states: Sequence[str] | None
) -> list[dict[str, Any]]:
    """Return follow-up alerts of the institutions the caller reads for."""
    scope = _alert_scope(deps, principal)
    with deps.sessions.begin() as session:
        repo = ReportingRepository(session)
        rows = repo.alerts(institutions=scope, states=states or None)
        _audit(repo, deps, principal, "list_alerts", detail=f"n={len(rows)}")
    return [_alert_view(a) for a in rows]


def change_alert(
    deps: Dependencies,
    principal: Principal,
    alert_id: str,
    action: str,
    note: str = "",
    key: RequestKey | None = None,
) -> Outcome:
    """Acknowledge or close a follow-up alert (coordinators of its institution)."""
    if not principal.has_role("coordinator", "admin"):
        raise Forbidden("only a follow-up coordinator may acknowledge or close alerts")
    now = deps.clock()

    def work(session: Session) -> dict[str, Any]:
        repo = ReportingRepository(session)
        alert = repo.alert(alert_id)
        if alert is None or not deps.access.may(principal, Action.READ, alert["institution"]):
            raise NotFound(f"no alert {alert_id}")
        deps.access.require(principal, Action.WRITE, alert["institution"])
        if action == "acknowledge":
            if alert["state"] != "open":
                raise Conflict(f"alert is {alert['state']}; only open alerts are acknowledged")
            repo.update_alert(
                alert_id,
                state="acknowledged",
                acknowledged_by=principal.user,
                acknowledged_at=now,
                note=note or alert["note"],
            )
        elif action == "close":
            if alert["state"] == "closed":
                raise Conflict("alert is already closed")
            repo.update_alert(
                alert_id,
                state="closed",
                closed_by=principal.user,
                closed_at=now,
                note=note or alert["note"],
            )
        else:
            raise InvalidInput(f"unknown alert action {action!r}")
        _audit(
            repo,
            deps,
            principal,
            f"alert_{action}",
            read_id=alert["read_id"],
            report_id=alert["report_id"],
            detail=note,
        )
        fresh = repo.alert(alert_id)
        assert fresh is not None
        return _alert_view(fresh)

    return once(deps, principal, key, 200, work)


def encode_cursor(value: int) -> str:
    """Return an opaque cursor for a position."""
    return base64.urlsafe_b64encode(str(value).encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    """Return the position in an opaque cursor; InvalidInput when it is not one of ours."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeError) as exc:
        raise InvalidInput("invalid cursor") from exc
    # Bounded: a huge number would overflow the database's integer on the way in.
    return parse_int(text, name="cursor", reason="invalid_cursor")


def notifications(
    deps: Dependencies, principal: Principal, after: int, limit: int
) -> list[dict[str, Any]]:
    """Return the caller's notifications after a position, oldest first."""
    with deps.sessions.begin() as session:
        rows = ReportingRepository(session).notifications_after(
            user=principal.user,
            roles=principal.roles,
            institution=principal.institution,
            after=after,
            limit=limit,
        )
    return [
        {"id": n["id"], "kind": n["kind"], "at": _iso(n["at"]), **{"data": n["payload"]}}
        for n in rows
    ]


def set_roster(
    deps: Dependencies, principal: Principal, worklist: str, shifts: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Replace a worklist's duty roster (admins)."""
    if not may_dispatch(principal):
        raise Forbidden("only an admin may change rosters")
    if _spec(deps, worklist) is None:
        raise NotFound(f"no worklist {worklist}")
    parsed = []
    for s in shifts:
        if s["ends_at"] <= s["starts_at"]:
            raise InvalidInput(f"shift of {s['user']} ends before it starts")
        parsed.append(
            Shift(
                user=s["user"],
                worklist=worklist,
                role=DutyRole(s["role"]),
                starts_at=s["starts_at"],
                ends_at=s["ends_at"],
                institution=s.get("institution"),
            )
        )
    with deps.sessions.begin() as session:
        repo = ReportingRepository(session)
        repo.replace_shifts(worklist, parsed)
        _audit(repo, deps, principal, "roster_set", detail=f"{worklist}: {len(parsed)} shifts")
    return get_roster(deps, principal, worklist)


def get_roster(deps: Dependencies, principal: Principal, worklist: str) -> list[dict[str, Any]]:
    """Return a worklist's duty roster."""
    if not principal.has_role("admin", "expert", "physician", "coordinator"):
        raise Forbidden("rosters are for readers and admins")
    if _spec(deps, worklist) is None:
        raise NotFound(f"no worklist {worklist}")
    with deps.sessions.begin() as session:
        shifts = ReportingRepository(session).shifts(worklist)
    return [
        {
            "user": s.user,
            "role": s.role.value,
            "institution": s.institution,
            "starts_at": _iso(s.starts_at),
            "ends_at": _iso(s.ends_at),
        }
        for s in shifts
    ]


def audit_trail(
    deps: Dependencies, principal: Principal, *, read_id: str | None, report_id: str | None
) -> list[dict[str, Any]]:
    """Return who viewed and changed a read or report (admins)."""
    if not principal.has_role("admin"):
        raise Forbidden("only an admin may read the audit trail")
    if not read_id and not report_id:
        raise InvalidInput("give read_id or report_id")
    with deps.sessions.begin() as session:
        rows = ReportingRepository(session).audit_trail(read_id=read_id, report_id=report_id)
    return [
        {
            "at": _iso(r["at"]),
            "user": r["user"],
            "roles": r["roles"],
            "action": r["action"],
            "read_id": r["read_id"],
            "report_id": r["report_id"],
            "detail": r["detail"],
        }
        for r in rows
    ]


# ---------------------------------------------------------------------------------------------
# Outbound HTTP deliveries
# ---------------------------------------------------------------------------------------------


def _queue_webhooks(
    repo: ReportingRepository,
    deps: Dependencies,
    event_type: str,
    payload: dict[str, Any],
    at: datetime,
) -> None:
    body = json.dumps({"type": event_type, "data": payload}, ensure_ascii=False, sort_keys=True)
    for url in deps.settings.webhook_urls:
        repo.add_delivery(
            {
                "channel": "webhook",
                "target": url,
                "event_type": event_type,
                "delivery_id": str(uuid.uuid4()),
                "body": body,
                "attempts": 0,
                "next_attempt_at": at,
                "last_error": "",
            }
        )


def deliver_due(deps: Dependencies, sender: Any, limit: int = 50) -> int:
    """Attempt due webhook and FHIR deliveries; back off exponentially, give up after the limit."""
    settings = deps.settings
    now = deps.clock()
    with deps.sessions.begin() as session:
        due = ReportingRepository(session).due_deliveries(now, limit)
    for d in due:
        outcome = sender.post(
            d["target"],
            d["body"],
            channel=d["channel"],
            event_type=d["event_type"],
            delivery_id=d["delivery_id"],
            timestamp=str(int(now.timestamp())),
        )
        attempts = d["attempts"] + 1
        with deps.sessions.begin() as session:
            repo = ReportingRepository(session)
            if outcome.ok:
                repo.update_delivery(
                    d["id"], attempts=attempts, delivered_at=deps.clock(), last_error=""
                )
            elif not outcome.retryable or attempts >= settings.webhook_max_attempts:
                log.error(
                    "giving up %s delivery %s to %s: %s",
                    d["channel"],
                    d["delivery_id"],
                    d["target"],
                    outcome.error,
                )
                repo.update_delivery(
                    d["id"], attempts=attempts, gave_up_at=deps.clock(), last_error=outcome.error
                )
            else:
                wait = settings.webhook_backoff_seconds * 2 ** (attempts - 1)
                repo.update_delivery(
                    d["id"],
                    attempts=attempts,
                    last_error=outcome.error,
                    next_attempt_at=deps.clock() + timedelta(seconds=wait),
                )
    return len(due)


# ---------------------------------------------------------------------------------------------
# Idempotent creates
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestKey:
    """A client's Idempotency-Key and a fingerprint of the request it came with."""

    value: str
    fingerprint: str


@dataclass(frozen=True)
class Outcome:
    """What a change answered, and whether it replays the first answer given to its key."""

    body: dict[str, Any]
    status: int
    replayed: bool = False


def _replay(stored: dict[str, Any], key: RequestKey) -> Outcome:
    if stored["request"] != key.fingerprint:
        raise InvalidInput(
            "Idempotency-Key was already used for a different request",
            idempotency_key=key.value,
        )
    return Outcome(cast(dict[str, Any], stored["body"]), int(stored["status"]), replayed=True)


def once(
    deps: Dependencies,
    principal: Principal,
    key: RequestKey | None,
    status: int,
    work: Callable[[Session], dict[str, Any]],
) -> Outcome:
    """Run a change in one transaction with its Idempotency-Key, or replay the key's answer."""
    if key is None:
        with deps.sessions.begin() as session:
            return Outcome(work(session), status)
    if not 1 <= len(key.value) <= 255:
        raise InvalidInput("Idempotency-Key must be 1 to 255 characters")
    try:
        with deps.sessions.begin() as session:
            stored = stored_response(session, principal.user, key.value)
            if stored is not None:
                return _replay(stored, key)
            # The key row goes in first: a concurrent request with the same key then waits on
            # it (PostgreSQL) or on the write lock (SQLite) rather than on the read, and fails
            # on the primary key instead of acting twice. The change, its events and the answer
            # commit together, so there is no moment where one exists without the other.
            reserve_key(
                session,
                user=principal.user,
                key=key.value,
                request=key.fingerprint,
                at=deps.clock(),
            )
            body = work(session)
            remember_response(session, user=principal.user, key=key.value, status=status, body=body)
        return Outcome(body, status)
    except IntegrityError:
        with deps.sessions.begin() as session:
            stored = stored_response(session, principal.user, key.value)
        if stored is None:
            raise
        return _replay(stored, key)
