"""Route exams to worklists from ExamCompleted, InferenceCompleted and TicketOpened."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sonobridge.common.problems import InvalidInput
from sonobridge.reporting.domain.assignment import DutyRole
from sonobridge.reporting.domain.clock import TimerKind
from sonobridge.reporting.domain.events import (
    ExamCompleted,
    ExamContext,
    InferenceCompleted,
    ReadRouted,
    TicketOpened,
)
from sonobridge.reporting.domain.policy import AiFinding, ExamFacts, Route, route_exam
from sonobridge.reporting.domain.reads import ReadKind, ReadState
from sonobridge.reporting.domain.records import Exam, HistoryEntry, JsonObject, ReadRecord, iso
from sonobridge.reporting.handlers.deliveries import publish
from sonobridge.reporting.handlers.scope import SYSTEM, pick_reader
from sonobridge.reporting.ports import Dependencies, Work

PROBE_ADVICE = "probe under repair: consider image quality"


def ai_findings(findings: list[JsonObject]) -> list[AiFinding]:
    """Return stored AI findings as the policy sees them."""
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
        for f in findings
    ]


def record_exam_completed(work: Work, deps: Dependencies, event: ExamCompleted) -> None:
    """Remember a completed exam; if AI does not answer in time, a timer routes it without AI."""
    ctx = event.context
    study = ctx.study_uid
    if not study:
        raise InvalidInput("ExamCompleted has no study_instance_uid")
    repo = work.reporting
    now = deps.clock()
    exam = Exam(
        **ctx.fields(),
        completed_at=event.completed_at,
        received_at=now,
        instances=list(event.instances),
    )
    if not repo.add_exam(exam):
        return
    existing = repo.read_for_study(study)
    if existing is not None:
        if existing.exam_completed_at is None:
            repo.update_read(existing.read_id, exam_completed_at=event.completed_at or now)
        return
    fire_at = now + timedelta(minutes=deps.policy.inference_wait_minutes)
    repo.arm_timer(TimerKind.INFERENCE_WAIT.value, study, fire_at, now)


def route_inference_result(work: Work, deps: Dependencies, event: InferenceCompleted) -> str | None:
    """Route an exam on its AI result; a redelivered or repeated result creates no second read."""
    ctx = event.context
    if not ctx.study_uid:
        raise InvalidInput("InferenceCompleted has no study_instance_uid")
    repo = work.reporting
    if repo.read_for_study(ctx.study_uid) is not None:
        return None
    exam = repo.exam(ctx.study_uid)
    quality = event.quality
    facts = ExamFacts(
        exam_id=ctx.exam_id or ctx.study_uid,
        exam_type=ctx.exam_type,
        institution=ctx.institution,
        operator=ctx.operator,
        inference_status=event.status,
        quality_acceptable=bool(quality.get("acceptable", False)) if quality is not None else None,
        quality_score=float(quality.get("score", 0.0)) if quality is not None else None,
        findings=ai_findings(event.findings),
    )
    return create_read(
        work,
        deps,
        ctx,
        facts,
        now=deps.clock(),
        exam_completed_at=exam.completed_at if exam else None,
        inference_id=event.inference_id,
        quality=quality,
        findings=list(event.findings),
        models=list(event.models),
    )


def route_without_ai(work: Work, deps: Dependencies, study_uid: str, at: datetime) -> None:
    """Route an exam whose AI result never came, from what ExamCompleted said."""
    repo = work.reporting
    if repo.read_for_study(study_uid) is not None:
        return
    exam = repo.exam(study_uid)
    if exam is None:
        return
    context = ExamContext.of(exam)
    facts = ExamFacts(
        exam_id=exam.exam_id or study_uid,
        exam_type=exam.exam_type,
        institution=exam.institution,
        operator=exam.operator,
        inference_status="missing",
    )
    create_read(work, deps, context, facts, now=at, exam_completed_at=exam.completed_at)


def create_read(
    work: Work,
    deps: Dependencies,
    context: ExamContext,
    facts: ExamFacts,
    *,
    now: datetime,
    exam_completed_at: datetime | None,
    inference_id: str | None = None,
    quality: JsonObject | None = None,
    findings: list[JsonObject] | None = None,
    models: list[JsonObject] | None = None,
) -> str:
    """Route the exam by policy, queue its read with a reader and a clock, and announce it."""
    policy = deps.policy
    routing = route_exam(policy, facts)
    spec = policy.worklist(routing.worklist)
    repo = work.reporting
    rescan = routing.route is Route.RESCAN
    due = None if rescan or not spec.clocked else routing.due_at(policy, now)
    assignee = None
    if not rescan:
        assignee = pick_reader(repo, spec, DutyRole.PRIMARY, now, context.institution)
    read = ReadRecord(
        read_id=str(uuid.uuid4()),
        kind=ReadKind.PRIMARY.value,
        **context.fields(),
        route=routing.route.value,
        worklist=routing.worklist,
        priority=routing.priority.value,
        state=(ReadState.RESCAN_REQUESTED if rescan else ReadState.QUEUED).value,
        assigned_to=assignee,
        created_at=now,
        due_at=due,
        first_due_at=due,
        exam_completed_at=exam_completed_at,
        escalation_level=0,
        policy_version=routing.policy_version,
        rule=routing.rule,
        reason=routing.reason,
        audit_sampled=routing.audit_sampled,
        inference_id=inference_id,
        inference_status=facts.inference_status,
        exam_quality=quality,
        ai_findings=findings or [],
        ai_models=models or [],
    )
    repo.add_read(read)
    repo.add_history(
        read.read_id,
        HistoryEntry(
            at=now,
            kind="routed",
            actor=SYSTEM,
            worklist=routing.worklist,
            assigned_to=assignee,
            detail=f"{routing.rule}: {routing.reason}",
        ),
    )
    if due is not None:
        repo.arm_timer(TimerKind.TARGET.value, read.read_id, due, now)
    announce_routing(work, deps, read, now)
    route = routing.route.value
    work.after_commit(lambda: deps.metrics.reads_routed.labels(route).inc())
    return read.read_id


def announce_routing(work: Work, deps: Dependencies, read: ReadRecord, now: datetime) -> None:
    """Publish ReportRouted and tell the assignee (or the operator, for a rescan)."""
    event = ReadRouted(
        context=ExamContext.of(read),
        read_id=read.read_id,
        route=read.route,
        worklist=read.worklist,
        priority=read.priority,
        assigned_to=read.assigned_to,
        policy_version=read.policy_version,
        reason=read.reason,
        routed_at=now,
        due_at=read.due_at,
    )
    publish(work, deps, event, key=read.study_uid, webhook="report.routed", at=now)
    payload = {
        "read_id": read.read_id,
        "worklist": read.worklist,
        "priority": read.priority,
        "route": read.route,
        "reason": read.reason,
        "due_at": iso(read.due_at),
    }
    repo = work.reporting
    if read.route == Route.RESCAN.value:
        quality = read.exam_quality or {}
        repo.notify(
            kind="rescan_requested",
            at=now,
            user=read.operator,
            payload={
                **payload,
                "advice": quality.get("advice", ""),
                "study_instance_uid": read.study_uid,
            },
        )
    elif read.assigned_to:
        repo.notify(kind="read_assigned", at=now, user=read.assigned_to, payload=payload)


def flag_reads_of_faulty_probe(work: Work, deps: Dependencies, event: TicketOpened) -> int:
    """Flag the open reads of exams from a probe that just got a ticket; tell their readers."""
    serial = event.device_serial
    if not serial or not event.ticket_id:
        raise InvalidInput("TicketOpened needs device_serial and ticket_id")
    repo = work.reporting
    at = event.opened_at or deps.clock()
    detail = f"ticket {event.ticket_id}: {event.symptom or 'fault reported'}; {PROBE_ADVICE}"
    flagged = 0
    for read in repo.open_reads_of_device(serial):
        # A re-published ticket event (new event id) must not flag a read twice.
        if repo.has_history(read.read_id, kind="probe_ticket", detail=detail):
            continue
        repo.add_history(
            read.read_id,
            HistoryEntry(
                at=at,
                kind="probe_ticket",
                actor=SYSTEM,
                worklist=read.worklist,
                assigned_to=read.assigned_to,
                detail=detail,
            ),
        )
        if read.assigned_to:
            repo.notify(
                kind="probe_under_repair",
                at=at,
                user=read.assigned_to,
                payload={
                    "read_id": read.read_id,
                    "study_instance_uid": read.study_uid,
                    "device_serial": serial,
                    "ticket_id": event.ticket_id,
                    "symptom": event.symptom,
                    "advice": PROBE_ADVICE,
                },
            )
        flagged += 1
    return flagged
