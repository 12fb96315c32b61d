"""Exams: open one under a client id, report what arrived, complete it with a manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sonobridge.common.access import Action
from sonobridge.common.audit import audit_record
from sonobridge.common.auth import Principal
from sonobridge.common.idempotency import Body, RequestKey, create_once
from sonobridge.common.problems import Conflict, Forbidden, InvalidInput, NotFound
from sonobridge.ingest.domain.commands import CompleteExam, CreateExam
from sonobridge.ingest.domain.events import ExamCompleted
from sonobridge.ingest.domain.model import (
    ExamState,
    check_manifest,
    manifest_sha256,
    missing_instances,
    parse_exam_id,
    require_uid,
)
from sonobridge.ingest.domain.records import Exam, Instance
from sonobridge.ingest.handlers import IngestDeps
from sonobridge.ingest.ports import Collision, Work


@dataclass
class ExamView:
    """An exam's state as the status endpoints report it."""

    exam: Exam
    expected: int
    received: int
    missing: list[str]
    received_bytes: int
    instances: list[Instance] = field(default_factory=list)


def may(deps: IngestDeps, principal: Principal, action: Action, exam: Exam | Instance) -> bool:
    """Tell whether the access policy lets `principal` do `action` to an exam or instance."""
    return deps.access.may(principal, action, exam.institution_id, exam.consortium_id)


def visible_exam(
    deps: IngestDeps,
    work: Work,
    principal: Principal,
    exam_id: str,
    action: Action = Action.READ,
) -> Exam:
    """Return an exam the caller may see (and, for WRITE, change)."""
    exam = work.exams.get(parse_exam_id(exam_id))
    # Someone else's exam answers exactly like a missing one: its existence is not disclosed.
    if exam is None or not may(deps, principal, Action.READ, exam):
        raise NotFound(f"no exam {exam_id}")
    if action is Action.WRITE and not may(deps, principal, Action.WRITE, exam):
        raise Forbidden(f"exam {exam.exam_id} belongs to another institution")
    return exam


def _check_create(deps: IngestDeps, principal: Principal, command: CreateExam) -> str:
    deps.access.require_any(principal, Action.WRITE)
    exam_id = parse_exam_id(command.exam_id)
    if not deps.access.may(principal, Action.WRITE, command.institution_id, principal.consortium):
        raise Forbidden("exams may only be opened for an institution the caller writes for")
    if command.study_instance_uid:
        require_uid("study_instance_uid", command.study_instance_uid)
    for name, value in (
        ("institution_id", command.institution_id),
        ("device_serial", command.device_serial),
        ("patient_ref", command.patient_ref),
    ):
        if not value.strip():
            raise InvalidInput(f"{name} must not be empty", reason="bad_exam")
    return exam_id


def create_exam(
    deps: IngestDeps, principal: Principal, command: CreateExam, idempotency_key: str | None
) -> tuple[Exam, bool]:
    """Open an exam under a client-generated id; a repeat returns the same exam."""
    exam_id = _check_create(deps, principal, command)
    digest = command.digest()
    # The command's digest is the fingerprint: keys stored before 0006 carry it, so they replay.
    key = RequestKey(idempotency_key, digest) if idempotency_key else None
    now = deps.clock()
    opened: list[tuple[Exam, bool]] = []

    def open_in(work: Work) -> Body:
        opened.append(_open_exam(deps, work, principal, command, exam_id, digest, now))
        return {"exam_id": exam_id}

    try:
        outcome = create_once(deps.unit, owner=principal.user, key=key, work=open_in, at=now)
    except Collision:
        # Two identical creates raced; the loser answers with the winner's exam.
        with deps.unit() as work:
            found = work.exams.get(exam_id)
            if found is None or found.request_sha256 != digest:
                raise Conflict(
                    f"exam {exam_id} was created concurrently with other values"
                ) from None
            return found, False
    if not outcome.replayed:
        return opened[0]
    with deps.unit() as work:
        return visible_exam(deps, work, principal, str(outcome.body["exam_id"])), False


def _open_exam(
    deps: IngestDeps,
    work: Work,
    principal: Principal,
    command: CreateExam,
    exam_id: str,
    digest: str,
    now: datetime,
) -> tuple[Exam, bool]:
    existing = work.exams.get(exam_id)
    if existing is not None:
        if not may(deps, principal, Action.WRITE, existing):
            raise Conflict(f"exam id {exam_id} is taken")
        if existing.request_sha256 != digest:
            raise Conflict(f"exam {exam_id} exists with different values", reason="exam_differs")
        return existing, False
    if command.study_instance_uid and work.exams.by_study(command.study_instance_uid):
        raise Conflict(
            f"study {command.study_instance_uid} already belongs to another exam",
            reason="study_taken",
        )
    exam = Exam(
        exam_id=exam_id,
        study_instance_uid=command.study_instance_uid or None,
        institution_id=command.institution_id,
        consortium_id=principal.consortium or "default",
        operator_id=command.operator_id or principal.user,
        device_serial=command.device_serial,
        exam_type=str(command.exam_type),
        patient_ref=command.patient_ref,
        state=str(ExamState.RECEIVING),
        request_sha256=digest,
        created_by=principal.user,
        created_at=now,
    )
    work.exams.add(exam)
    work.audit.append(
        audit_record(
            at=now,
            actor=principal,
            action="create_exam",
            resource_type="exam",
            resource_id=exam_id,
            institution_id=command.institution_id,
            channel="rest",
        )
    )
    return exam, True


def _locked_exam(work: Work, exam_id: str) -> Exam:
    """Re-read an exam the caller already found, holding its row lock until commit."""
    exam = work.exams.get(exam_id, for_update=True)
    if exam is None:
        raise NotFound(f"no exam {exam_id}")
    return exam


def exam_view(work: Work, exam: Exam, with_instances: bool = False) -> ExamView:
    """Count what has arrived for an exam against its manifest."""
    stored = work.instances.stored_of_exam(exam.exam_id)
    manifest = work.exams.manifest(exam.exam_id)
    missing, _ = missing_instances(manifest, {i.sop_instance_uid: i.sha256 for i in stored})
    return ExamView(
        exam=exam,
        expected=len(manifest),
        received=len(stored),
        missing=missing,
        received_bytes=sum(i.size_bytes for i in stored),
        instances=stored if with_instances else [],
    )


def get_exam(
    deps: IngestDeps, principal: Principal, exam_id: str, *, channel: str = "rest"
) -> ExamView:
    """Return what has arrived for an exam, audited."""
    deps.access.require_any(principal, Action.READ)
    with deps.unit() as work:
        exam = visible_exam(deps, work, principal, exam_id)
        view = exam_view(work, exam, with_instances=True)
        work.audit.append(
            audit_record(
                at=deps.clock(),
                actor=principal,
                action="read_exam",
                resource_type="exam",
                resource_id=exam.exam_id,
                institution_id=exam.institution_id,
                channel=channel,
            )
        )
    return view


def complete_exam(deps: IngestDeps, principal: Principal, command: CompleteExam) -> ExamView:
    """Record the manifest; emit ExamCompleted once every listed instance is stored."""
    deps.access.require_any(principal, Action.WRITE)
    check_manifest(command.entries)
    try:
        return _complete_exam(deps, principal, command)
    except Collision:
        # An identical manifest raced this one in (SQLite takes no row lock on read): the
        # retry sees it and answers like any repeat, or 409 if it differs.
        return _complete_exam(deps, principal, command)


def _complete_exam(deps: IngestDeps, principal: Principal, command: CompleteExam) -> ExamView:
    completed_type: str | None = None
    with deps.unit() as work:
        visible = visible_exam(deps, work, principal, command.exam_id, Action.WRITE)
        exam = _locked_exam(work, visible.exam_id)
        digest = manifest_sha256(command.entries)
        if exam.manifest_sha256 is None:
            work.exams.record_manifest(
                exam.exam_id,
                command.entries,
                digest,
                started_at=command.started_at,
                completed_at=command.completed_at,
                scan_seconds=command.scan_seconds,
            )
        elif exam.manifest_sha256 != digest:
            raise Conflict(
                f"exam {exam.exam_id} already has a different manifest", reason="manifest_differs"
            )
        stored = {i.sop_instance_uid: i.sha256 for i in work.instances.stored_of_exam(exam.exam_id)}
        _, mismatched = missing_instances(command.entries, stored)
        if mismatched:
            raise Conflict(
                "stored bytes differ from the manifest hash for: " + ", ".join(mismatched),
                reason="manifest_mismatch",
                mismatched=mismatched,
            )
        completed_type = settle_exam(deps, work, exam.exam_id)
        work.audit.append(
            audit_record(
                at=deps.clock(),
                actor=principal,
                action="complete_exam",
                resource_type="exam",
                resource_id=exam.exam_id,
                institution_id=exam.institution_id,
                channel="rest",
            )
        )
        view = exam_view(work, _locked_exam(work, exam.exam_id))
    if completed_type:
        deps.metrics.exams_completed.labels(completed_type).inc()
    return view


def settle_exam(deps: IngestDeps, work: Work, exam_id: str) -> str | None:
    """Move an exam with a manifest to AWAITING or COMPLETED; return its type if it completed."""
    exam = work.exams.get(exam_id, for_update=True)
    if exam is None or exam.state == ExamState.COMPLETED or exam.manifest_sha256 is None:
        return None
    manifest = work.exams.manifest(exam_id)
    stored = {i.sop_instance_uid: i for i in work.instances.stored_of_exam(exam_id)}
    missing, mismatched = missing_instances(manifest, {sop: i.sha256 for sop, i in stored.items()})
    if missing or mismatched:
        work.exams.set_state(exam_id, str(ExamState.AWAITING_INSTANCES))
        return None
    if not work.exams.complete(exam_id, deps.clock()):
        return None  # a concurrent writer completed it and announced it first
    work.emit(ExamCompleted(exam, [stored[e.sop_instance_uid] for e in manifest]))
    return str(exam.exam_type)
