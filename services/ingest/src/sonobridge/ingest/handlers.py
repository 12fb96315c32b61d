"""Ingest use cases: exams, resumable uploads, storing instances, completion, reads."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.access import AccessPolicy, Action
from sonobridge.common.auth import Principal
from sonobridge.common.delivery import Outbox
from sonobridge.common.objects.ports import ObjectNotFound, ObjectStore
from sonobridge.common.problems import Conflict, Forbidden, InvalidInput, NotFound, Problem
from sonobridge.ingest.adapters import dataset_hash
from sonobridge.ingest.adapters import repository as repo
from sonobridge.ingest.adapters.dicomfile import peek_uids, read_instance
from sonobridge.ingest.adapters.spool import Spool, SpooledFile
from sonobridge.ingest.domain.model import (
    Channel,
    ExamState,
    ExamType,
    ManifestEntry,
    Scope,
    check_manifest,
    manifest_sha256,
    missing_instances,
    parse_exam_id,
    require_uid,
    writer_scope,
)
from sonobridge.ingest.domain.validation import (
    APP_PIXEL_SPACING_KEY,
    InstanceDescription,
    check_description,
    check_size,
    check_study,
    parse_pixel_spacing,
)
from sonobridge.ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)

SOURCE = "ingest"
Clock = Callable[[], datetime]

_EXAM_TYPES = {t: getattr(events_pb2, f"EXAM_TYPE_{t.name}") for t in ExamType}
_RECEIVED_VIA = {
    Channel.APP: events_pb2.RECEIVED_VIA_APP_UPLOAD,
    Channel.STOW: events_pb2.RECEIVED_VIA_STOW_RS,
    Channel.CSTORE: events_pb2.RECEIVED_VIA_C_STORE,
}
# A pending claim older than this is from a writer that died; another writer may take it over.
_STALE_CLAIM = timedelta(minutes=10)
# How long a writer waits for a concurrent writer of the same instance to finish.
_CLAIM_WAIT_S = 30.0


@dataclass
class IngestDeps:
    """Everything the use cases need, built once by bootstrap."""

    sessions: sessionmaker[Session]
    store: ObjectStore
    outbox: Outbox
    spool: Spool
    metrics: IngestMetrics
    clock: Clock
    max_instance_bytes: int
    upload_expiry: timedelta
    access: AccessPolicy = field(default_factory=AccessPolicy)


@dataclass(frozen=True)
class CreateExam:
    """The app's request to open an exam."""

    exam_id: str
    institution_id: str
    device_serial: str
    exam_type: ExamType
    patient_ref: str
    operator_id: str = ""
    study_instance_uid: str | None = None

    def digest(self) -> str:
        """Hash the request's values, to tell a repeat from a contradicting reuse."""
        body = json.dumps(
            {
                "exam_id": self.exam_id,
                "institution_id": self.institution_id,
                "device_serial": self.device_serial,
                "exam_type": str(self.exam_type),
                "patient_ref": self.patient_ref,
                "operator_id": self.operator_id,
                "study_instance_uid": self.study_instance_uid,
            },
            sort_keys=True,
        )
        return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class CompleteExam:
    """The app's manifest: every instance of the exam with its SHA-256."""

    exam_id: str
    entries: Sequence[ManifestEntry]
    started_at: datetime | None = None
    completed_at: datetime | None = None
    scan_seconds: float = 0.0


@dataclass(frozen=True)
class StoredInstance:
    """The outcome of storing one instance."""

    ref: events_pb2.InstanceRef
    duplicate: bool
    exam_id: str | None


@dataclass
class ExamView:
    """An exam's state as the status endpoints report it."""

    row: Row[Any]
    expected: int
    received: int
    missing: list[str]
    received_bytes: int
    instances: list[Row[Any]] = field(default_factory=list)


def _stamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    # Naive values come from SQLite, which drops the zone; they were written as UTC.
    stamp.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return stamp


def _ts(value: datetime | None) -> Timestamp | None:
    return None if value is None else _stamp(value)


def object_key(study: str, series: str, sop: str) -> str:
    """Return the write-once object key of an instance."""
    return f"dicom/{study}/{series}/{sop}.dcm"


def exam_context(exam: Row[Any] | None, instance: Row[Any] | None = None) -> events_pb2.ExamContext:
    """Build the event ExamContext from an exam row, or from an instance arriving without one."""
    if exam is not None:
        return events_pb2.ExamContext(
            exam_id=exam.exam_id,
            study_instance_uid=exam.study_instance_uid or "",
            institution_id=exam.institution_id,
            operator_id=exam.operator_id,
            device_serial=exam.device_serial,
            exam_type=_EXAM_TYPES[ExamType(exam.exam_type)],
            patient_ref=exam.patient_ref,
        )
    assert instance is not None
    return events_pb2.ExamContext(
        study_instance_uid=instance.study_instance_uid,
        institution_id=instance.institution_id,
        operator_id=instance.operator_id,
        device_serial=instance.device_serial,
    )


def instance_ref(row: Row[Any]) -> events_pb2.InstanceRef:
    """Build the event InstanceRef of an indexed instance."""
    ref = events_pb2.InstanceRef(
        study_instance_uid=row.study_instance_uid,
        series_instance_uid=row.series_instance_uid,
        sop_instance_uid=row.sop_instance_uid,
        sop_class_uid=row.sop_class_uid,
        object_key=row.object_key,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        transfer_syntax_uid=row.transfer_syntax_uid,
        number_of_frames=row.number_of_frames,
        modality=row.modality,
    )
    if row.app_pixel_spacing:
        row_mm, column_mm = parse_pixel_spacing(row.app_pixel_spacing)
        ref.app_pixel_spacing.row_mm, ref.app_pixel_spacing.column_mm = row_mm, column_mm
    return ref


def _scope_of(row: Row[Any]) -> Scope:
    return Scope(row.institution_id, row.consortium_id)


def _may(deps: IngestDeps, principal: Principal, action: Action, row: Row[Any]) -> bool:
    return deps.access.may(principal, action, row.institution_id, row.consortium_id)


def _visible_exam(
    deps: IngestDeps,
    session: Session,
    principal: Principal,
    exam_id: str,
    action: Action = Action.READ,
) -> Row[Any]:
    exam = repo.get_exam(session, parse_exam_id(exam_id))
    # Someone else's exam answers exactly like a missing one: its existence is not disclosed.
    if exam is None or not _may(deps, principal, Action.READ, exam):
        raise NotFound(f"no exam {exam_id}")
    if action is Action.WRITE and not _may(deps, principal, Action.WRITE, exam):
        raise Forbidden(f"exam {exam.exam_id} belongs to another institution")
    return exam


# ---------------------------------------------------------------------------------------------
# Exams
# ---------------------------------------------------------------------------------------------


def create_exam(
    deps: IngestDeps, principal: Principal, command: CreateExam, idempotency_key: str | None
) -> tuple[Row[Any], bool]:
    """Open an exam under a client-generated id; a repeat returns the same exam."""
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
    digest = command.digest()
    now = deps.clock()
    try:
        with deps.sessions.begin() as session:
            if idempotency_key:
                known = repo.get_idempotency(session, principal.user, idempotency_key)
                if known is not None:
                    if known.request_sha256 != digest:
                        raise Conflict(
                            "Idempotency-Key was already used for a different request",
                            reason="idempotency_key_reused",
                        )
                    return _visible_exam(deps, session, principal, known.exam_id), False
            existing = repo.get_exam(session, exam_id)
            if existing is not None:
                if not _may(deps, principal, Action.WRITE, existing):
                    raise Conflict(f"exam id {exam_id} is taken")
                if existing.request_sha256 != digest:
                    raise Conflict(
                        f"exam {exam_id} exists with different values", reason="exam_differs"
                    )
                return existing, False
            if command.study_instance_uid and repo.exam_by_study(
                session, command.study_instance_uid
            ):
                raise Conflict(
                    f"study {command.study_instance_uid} already belongs to another exam",
                    reason="study_taken",
                )
            repo.insert_exam(
                session,
                {
                    "exam_id": exam_id,
                    "study_instance_uid": command.study_instance_uid or None,
                    "institution_id": command.institution_id,
                    "consortium_id": principal.consortium or "default",
                    "operator_id": command.operator_id or principal.user,
                    "device_serial": command.device_serial,
                    "exam_type": str(command.exam_type),
                    "patient_ref": command.patient_ref,
                    "state": str(ExamState.RECEIVING),
                    "request_sha256": digest,
                    "created_by": principal.user,
                    "created_at": now,
                },
            )
            if idempotency_key:
                repo.put_idempotency(
                    session,
                    {
                        "owner": principal.user,
                        "key": idempotency_key,
                        "request_sha256": digest,
                        "exam_id": exam_id,
                        "created_at": now,
                    },
                )
            repo.record_audit(
                session,
                at=now,
                actor=principal,
                action="create_exam",
                resource_type="exam",
                resource_id=exam_id,
                institution_id=command.institution_id,
                channel="rest",
            )
            row = repo.get_exam(session, exam_id)
            assert row is not None
            return row, True
    except IntegrityError:
        # Two identical creates raced; the loser answers with the winner's exam.
        with deps.sessions.begin() as session:
            existing = repo.get_exam(session, exam_id)
            if existing is None or existing.request_sha256 != digest:
                raise Conflict(
                    f"exam {exam_id} was created concurrently with other values"
                ) from None
            return existing, False


def _locked_exam(session: Session, exam_id: str) -> Row[Any]:
    """Re-read an exam the caller already found, holding its row lock until commit."""
    exam = repo.get_exam(session, exam_id, for_update=True)
    if exam is None:
        raise NotFound(f"no exam {exam_id}")
    return exam


def _exam_view(session: Session, exam: Row[Any], with_instances: bool = False) -> ExamView:
    stored = repo.stored_instances_of_exam(session, exam.exam_id)
    manifest = repo.manifest_of(session, exam.exam_id)
    missing, _ = missing_instances(manifest, {r.sop_instance_uid: r.sha256 for r in stored})
    return ExamView(
        row=exam,
        expected=len(manifest),
        received=len(stored),
        missing=missing,
        received_bytes=sum(r.size_bytes for r in stored),
        instances=stored if with_instances else [],
    )


def get_exam(
    deps: IngestDeps, principal: Principal, exam_id: str, *, channel: str = "rest"
) -> ExamView:
    """Return what has arrived for an exam, audited."""
    deps.access.require_any(principal, Action.READ)
    with deps.sessions.begin() as session:
        exam = _visible_exam(deps, session, principal, exam_id)
        view = _exam_view(session, exam, with_instances=True)
        repo.record_audit(
            session,
            at=deps.clock(),
            actor=principal,
            action="read_exam",
            resource_type="exam",
            resource_id=exam.exam_id,
            institution_id=exam.institution_id,
            channel=channel,
        )
    return view


def complete_exam(deps: IngestDeps, principal: Principal, command: CompleteExam) -> ExamView:
    """Record the manifest; emit ExamCompleted once every listed instance is stored."""
    deps.access.require_any(principal, Action.WRITE)
    check_manifest(command.entries)
    try:
        return _complete_exam(deps, principal, command)
    except IntegrityError:
        # An identical manifest raced this one in (SQLite takes no row lock on read): the
        # retry sees it and answers like any repeat, or 409 if it differs.
        return _complete_exam(deps, principal, command)


def _complete_exam(deps: IngestDeps, principal: Principal, command: CompleteExam) -> ExamView:
    completed_type: str | None = None
    with deps.sessions.begin() as session:
        visible = _visible_exam(deps, session, principal, command.exam_id, Action.WRITE)
        exam = _locked_exam(session, visible.exam_id)
        digest = manifest_sha256(command.entries)
        if exam.manifest_sha256 is None:
            repo.save_manifest(session, exam.exam_id, command.entries)
            repo.update_exam(
                session,
                exam.exam_id,
                manifest_sha256=digest,
                scan_started_at=command.started_at,
                scan_completed_at=command.completed_at,
                scan_seconds=command.scan_seconds,
            )
        elif exam.manifest_sha256 != digest:
            raise Conflict(
                f"exam {exam.exam_id} already has a different manifest", reason="manifest_differs"
            )
        stored = {
            r.sop_instance_uid: r.sha256
            for r in repo.stored_instances_of_exam(session, exam.exam_id)
        }
        _, mismatched = missing_instances(command.entries, stored)
        if mismatched:
            raise Conflict(
                "stored bytes differ from the manifest hash for: " + ", ".join(mismatched),
                reason="manifest_mismatch",
                mismatched=mismatched,
            )
        completed_type = _settle_exam(deps, session, exam.exam_id)
        repo.record_audit(
            session,
            at=deps.clock(),
            actor=principal,
            action="complete_exam",
            resource_type="exam",
            resource_id=exam.exam_id,
            institution_id=exam.institution_id,
            channel="rest",
        )
        view = _exam_view(session, _locked_exam(session, exam.exam_id))
    if completed_type:
        deps.metrics.exams_completed.labels(completed_type).inc()
    return view


def _settle_exam(deps: IngestDeps, session: Session, exam_id: str) -> str | None:
    """Move an exam with a manifest to AWAITING or COMPLETED; return its type if it completed."""
    exam = repo.get_exam(session, exam_id, for_update=True)
    if exam is None or exam.state == ExamState.COMPLETED or exam.manifest_sha256 is None:
        return None
    manifest = repo.manifest_of(session, exam_id)
    rows = {r.sop_instance_uid: r for r in repo.stored_instances_of_exam(session, exam_id)}
    missing, mismatched = missing_instances(manifest, {sop: r.sha256 for sop, r in rows.items()})
    if missing or mismatched:
        repo.update_exam(session, exam_id, state=str(ExamState.AWAITING_INSTANCES))
        return None
    now = deps.clock()
    if not repo.complete_exam_state(session, exam_id, now):
        return None  # a concurrent writer completed it and announced it first
    ordered = [rows[e.sop_instance_uid] for e in manifest]
    event = events_pb2.ExamCompleted(
        context=exam_context(exam),
        instances=[instance_ref(r) for r in ordered],
        instance_count=len(ordered),
        total_bytes=sum(r.size_bytes for r in ordered),
        scan_seconds=exam.scan_seconds or 0.0,
        manifest_sha256=exam.manifest_sha256,
    )
    if (started := _ts(exam.scan_started_at)) is not None:
        event.started_at.CopyFrom(started)
    if (ended := _ts(exam.scan_completed_at)) is not None:
        event.completed_at.CopyFrom(ended)
    key = exam.study_instance_uid or ordered[0].study_instance_uid
    deps.outbox.emit(session, event, source=SOURCE, key=key)
    return str(exam.exam_type)


# ---------------------------------------------------------------------------------------------
# Storing instances (every channel)
# ---------------------------------------------------------------------------------------------


def _reject(deps: IngestDeps, channel: Channel, problem: Problem) -> None:
    reason = str(problem.extensions.get("reason") or problem.type_slug)
    deps.metrics.rejections.labels(reason).inc()
    deps.metrics.uploads.labels(str(channel), "rejected").inc()


def validate_spooled(
    deps: IngestDeps, spooled: SpooledFile
) -> tuple[InstanceDescription, dict[str, Any]]:
    """Parse and check a spooled instance; raise a Problem naming what is wrong."""
    check_size(spooled.size, deps.max_instance_bytes)
    description, pixels, metadata = read_instance(spooled.path)
    check_description(description, pixels)
    return description, metadata


def identify(spooled: SpooledFile) -> tuple[str, str]:
    """Return the (SOP class, SOP instance) UIDs a refused file names, or empty strings."""
    return peek_uids(spooled.path)


def store_instance(
    deps: IngestDeps,
    principal: Principal,
    spooled: SpooledFile,
    *,
    channel: Channel,
    exam_id: str | None = None,
    expected_study: str | None = None,
    scope: Scope | None = None,
    app_pixel_spacing: tuple[float, float] | None = None,
) -> StoredInstance:
    """Validate, write once under dicom/{study}/{series}/{sop}.dcm, index, announce."""
    try:
        deps.access.require_any(principal, Action.WRITE)
        description, metadata = validate_spooled(deps, spooled)
        check_study(description, expected_study, "the study in the request path")
        result, completed_type = _store_valid(
            deps,
            principal,
            spooled,
            description,
            metadata,
            channel,
            exam_id,
            scope,
            app_pixel_spacing,
        )
    except Problem as problem:
        _reject(deps, channel, problem)
        _audit_rejection(deps, principal, channel, exam_id, problem)
        raise
    outcome = "duplicate" if result.duplicate else "stored"
    deps.metrics.uploads.labels(str(channel), outcome).inc()
    if not result.duplicate:
        deps.metrics.uploaded_bytes.labels(str(channel)).inc(spooled.size)
    if completed_type:
        deps.metrics.exams_completed.labels(completed_type).inc()
    return result


def _audit_rejection(
    deps: IngestDeps, principal: Principal, channel: Channel, exam_id: str | None, problem: Problem
) -> None:
    with deps.sessions.begin() as session:
        repo.record_audit(
            session,
            at=deps.clock(),
            actor=principal,
            action="store_instance",
            resource_type="exam" if exam_id else "instance",
            resource_id=exam_id or "-",
            institution_id=principal.institution,
            channel=str(channel),
            outcome=f"rejected:{problem.extensions.get('reason') or problem.type_slug}",
            detail=problem.detail,
        )


def _resolve_exam(
    deps: IngestDeps,
    session: Session,
    principal: Principal,
    description: InstanceDescription,
    exam_id: str | None,
) -> Row[Any] | None:
    """Find the exam an instance belongs to and check the instance agrees with it."""
    study = description.study_instance_uid
    # A study that arrived without an exam (STOW-RS, C-STORE) belongs to whoever stored it first.
    for institution, consortium in repo.owners_of_study(session, study):
        if not deps.access.may(principal, Action.WRITE, institution, consortium):
            raise Forbidden(f"study {study} belongs to another institution")
    if exam_id is not None:
        exam = _visible_exam(deps, session, principal, exam_id, Action.WRITE)
        if exam.study_instance_uid:
            check_study(description, exam.study_instance_uid, f"exam {exam.exam_id}")
        else:
            other = repo.exam_by_study(session, description.study_instance_uid)
            if other is not None and other.exam_id != exam.exam_id:
                raise InvalidInput(
                    f"StudyInstanceUID {description.study_instance_uid} belongs to another exam",
                    reason="uid_mismatch",
                )
        return exam
    by_study = repo.exam_by_study(session, study)
    if by_study is not None and not _may(deps, principal, Action.WRITE, by_study):
        raise Forbidden(f"study {study} belongs to another institution")
    return by_study


def _spacing_text(spacing: tuple[float, float] | None) -> str | None:
    return "\\".join(f"{v:g}" for v in spacing) if spacing else None


def _claim(
    deps: IngestDeps,
    principal: Principal,
    description: InstanceDescription,
    metadata: dict[str, Any],
    spooled: SpooledFile,
    channel: Channel,
    exam_id: str | None,
    scope: Scope | None,
    app_pixel_spacing: tuple[float, float] | None = None,
) -> Row[Any] | None:
    """Insert a pending index row (the write claim); return the stored row if already there."""
    deadline = time.monotonic() + _CLAIM_WAIT_S
    sop = description.sop_instance_uid
    while True:
        now = deps.clock()
        try:
            with deps.sessions.begin() as session:
                exam = _resolve_exam(deps, session, principal, description, exam_id)
                if exam is not None:
                    planned = repo.manifest_of(session, exam.exam_id)
                    listed = {e.sop_instance_uid: e.sha256 for e in planned}
                    if sop in listed and listed[sop] != spooled.sha256:
                        raise Conflict(
                            f"instance {sop} differs from the SHA-256 in exam "
                            f"{exam.exam_id}'s manifest",
                            reason="manifest_mismatch",
                        )
                existing = repo.get_instance(session, sop)
                if existing is not None:
                    if existing.status == "stored" or existing.sha256 != spooled.sha256:
                        if existing.sha256 != spooled.sha256:
                            if existing.status != "stored":
                                raise _conflict(sop, "file")
                            # Compared outside the transaction: it reads the stored object.
                            raise _OtherFile(existing)
                        if not _may(deps, principal, Action.WRITE, existing):
                            raise Conflict(f"instance {sop} is already stored", reason="taken")
                        return existing
                    claimed = existing.claimed_at
                    claimed = claimed if claimed.tzinfo else claimed.replace(tzinfo=UTC)
                    if now - claimed < _STALE_CLAIM:
                        raise _Busy()
                    repo.delete_instance(session, sop, "pending")
                owner = _scope_of(exam) if exam else (scope or writer_scope(principal))
                repo.insert_instance(
                    session,
                    {
                        "sop_instance_uid": sop,
                        "status": "pending",
                        "claimed_at": now,
                        "study_instance_uid": description.study_instance_uid,
                        "series_instance_uid": description.series_instance_uid,
                        "sop_class_uid": description.sop_class_uid,
                        "exam_id": exam.exam_id if exam else None,
                        "object_key": object_key(
                            description.study_instance_uid,
                            description.series_instance_uid,
                            sop,
                        ),
                        "sha256": spooled.sha256,
                        "size_bytes": spooled.size,
                        "transfer_syntax_uid": description.transfer_syntax_uid,
                        "number_of_frames": description.number_of_frames,
                        "rows": description.rows,
                        "columns": description.columns,
                        "modality": description.modality[:16],
                        "body_part": description.body_part[:64],
                        "patient_id": description.patient_id[:64],
                        "patient_name": description.patient_name[:324],
                        "study_date": description.study_date[:8],
                        "study_time": description.study_time[:32],
                        "accession_number": description.accession_number[:64],
                        "study_description": description.study_description[:255],
                        "study_id": description.study_id[:32],
                        "series_number": description.series_number,
                        "series_description": description.series_description[:255],
                        "instance_number": description.instance_number,
                        "device_serial": (
                            exam.device_serial if exam else description.device_serial
                        )[:128],
                        "operator_id": exam.operator_id if exam else principal.user,
                        "institution_id": owner.institution_id,
                        "consortium_id": owner.consortium_id,
                        "received_via": str(channel),
                        "stored_at": None,
                        "metadata_json": json.dumps(metadata),
                        "app_pixel_spacing": _spacing_text(app_pixel_spacing),
                    },
                )
            return None
        except _OtherFile as other:
            if exam_id is not None:
                # The app's manifest names each file's SHA-256: its upload must be the stored file.
                raise _conflict(sop, "file") from None
            if not _same_dataset(deps, other.row, spooled):
                raise _conflict(sop, "dataset") from None
            if not _may(deps, principal, Action.WRITE, other.row):
                raise Conflict(f"instance {sop} is already stored", reason="taken") from None
            return other.row
        except (_Busy, IntegrityError):
            # Another writer holds the claim for this SOP instance: wait for its outcome.
            if time.monotonic() > deadline:
                raise Conflict(
                    f"instance {sop} is being stored by another request; retry later",
                    reason="busy",
                ) from None
            time.sleep(0.05)


def _conflict(sop: str, what: str) -> Conflict:
    return Conflict(
        f"instance {sop} is already stored with a different {what}", reason="duplicate_conflict"
    )


def _same_dataset(deps: IngestDeps, stored: Row[Any], spooled: SpooledFile) -> bool:
    """Tell whether a file differing from a stored one holds the same dataset."""
    # An instance's identity is its dataset (PS3.10 7.1): the File Meta differs by channel
    # (STOW client, the C-STORE receiver's own implementation UID and source AE title).
    with spooled.path.open("rb") as handle:
        received = dataset_hash.dataset_sha256(iter(lambda: handle.read(1024 * 1024), b""))
    with deps.store.open(stored.object_key) as chunks:
        return dataset_hash.dataset_sha256(chunks) == received


class _Busy(Exception):
    """Another writer holds a fresh claim on the instance."""


class _OtherFile(Exception):
    """The instance is stored as another file; its dataset may still be the same."""

    def __init__(self, row: Row[Any]) -> None:
        super().__init__(row.sop_instance_uid)
        self.row = row


def _store_valid(
    deps: IngestDeps,
    principal: Principal,
    spooled: SpooledFile,
    description: InstanceDescription,
    metadata: dict[str, Any],
    channel: Channel,
    exam_id: str | None,
    scope: Scope | None,
    app_pixel_spacing: tuple[float, float] | None = None,
) -> tuple[StoredInstance, str | None]:
    sop = description.sop_instance_uid
    existing = _claim(
        deps,
        principal,
        description,
        metadata,
        spooled,
        channel,
        exam_id,
        scope,
        app_pixel_spacing,
    )
    if existing is not None:
        completed = None
        with deps.sessions.begin() as session:
            if exam_id is not None and existing.exam_id is None:
                # Arrived earlier by STOW-RS or C-STORE: the app's copy links it to the exam.
                repo.update_instance(
                    session,
                    sop,
                    exam_id=parse_exam_id(exam_id),
                    app_pixel_spacing=_spacing_text(app_pixel_spacing),
                )
                existing = repo.get_instance(session, sop)
                assert existing is not None
                completed = _settle_exam(deps, session, existing.exam_id)
            exam = repo.get_exam(session, existing.exam_id) if existing.exam_id else None
            event = events_pb2.InstanceStored(
                context=exam_context(exam, existing),
                instance=instance_ref(existing),
                received_via=_RECEIVED_VIA[channel],
                duplicate=True,
            )
            event.stored_at.CopyFrom(_stamp(deps.clock()))
            deps.outbox.emit(session, event, source=SOURCE, key=existing.study_instance_uid)
            repo.record_audit(
                session,
                at=deps.clock(),
                actor=principal,
                action="store_instance",
                resource_type="instance",
                resource_id=sop,
                institution_id=existing.institution_id,
                channel=str(channel),
                outcome="duplicate",
            )
        return StoredInstance(instance_ref(existing), True, existing.exam_id), completed
    key = object_key(description.study_instance_uid, description.series_instance_uid, sop)
    try:
        with spooled.path.open("rb") as handle:
            deps.store.put(key, handle, length=spooled.size, content_type="application/dicom")
        with deps.sessions.begin() as session:
            now = deps.clock()
            repo.update_instance(session, sop, status="stored", stored_at=now)
            row = repo.get_instance(session, sop)
            assert row is not None
            exam = repo.get_exam(session, row.exam_id) if row.exam_id else None
            if exam is not None and not exam.study_instance_uid:
                repo.update_exam(
                    session, exam.exam_id, study_instance_uid=description.study_instance_uid
                )
                exam = repo.get_exam(session, exam.exam_id)
            event = events_pb2.InstanceStored(
                context=exam_context(exam, row),
                instance=instance_ref(row),
                received_via=_RECEIVED_VIA[channel],
                duplicate=False,
            )
            event.stored_at.CopyFrom(_stamp(now))
            deps.outbox.emit(session, event, source=SOURCE, key=row.study_instance_uid)
            repo.record_audit(
                session,
                at=now,
                actor=principal,
                action="store_instance",
                resource_type="instance",
                resource_id=sop,
                institution_id=row.institution_id,
                channel=str(channel),
            )
            completed = _settle_exam(deps, session, exam.exam_id) if exam is not None else None
        return StoredInstance(instance_ref(row), False, row.exam_id), completed
    except BaseException:
        # Leave nothing behind: neither the claim nor an object no index row points to.
        with deps.sessions.begin() as session:
            repo.delete_instance(session, sop, "pending")
        try:
            deps.store.delete(key)
        except Exception:
            log.exception("could not remove object %s after a failed store", key)
        raise


# ---------------------------------------------------------------------------------------------
# Resumable uploads (tus 1.0)
# ---------------------------------------------------------------------------------------------


def _upload_for(session: Session, principal: Principal, session_id: str, now: datetime) -> Row[Any]:
    row = repo.get_upload(session, session_id)
    if row is None or row.owner != principal.user:
        raise NotFound(f"no upload {session_id}")
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
    if expires < now:
        raise Gone(f"upload {session_id} expired at {expires.isoformat()}")
    return row


class Gone(NotFound):
    """The upload existed but expired or was terminated (tus answers 410)."""

    status, title, type_slug = 410, "Gone", "gone"


def create_upload(
    deps: IngestDeps,
    principal: Principal,
    exam_id: str,
    length: int,
    upload_metadata: dict[str, str],
) -> Row[Any]:
    """Open a resumable upload of one instance into an exam."""
    deps.access.require_any(principal, Action.WRITE)
    check_size(length, deps.max_instance_bytes)
    if length <= 0:
        raise InvalidInput("Upload-Length must be positive", reason="bad_upload_length")
    if APP_PIXEL_SPACING_KEY in upload_metadata:
        parse_pixel_spacing(upload_metadata[APP_PIXEL_SPACING_KEY])
    now = deps.clock()
    session_id = str(uuid.uuid4())
    with deps.sessions.begin() as session:
        exam = _visible_exam(deps, session, principal, exam_id, Action.WRITE)
        repo.insert_upload(
            session,
            {
                "session_id": session_id,
                "exam_id": exam.exam_id,
                "owner": principal.user,
                "upload_length": length,
                "upload_offset": 0,
                "upload_metadata": json.dumps(upload_metadata),
                "status": "open",
                "parts": 0,
                "interrupted": False,
                "created_at": now,
                "expires_at": now + deps.upload_expiry,
            },
        )
        repo.record_audit(
            session,
            at=now,
            actor=principal,
            action="create_upload",
            resource_type="exam",
            resource_id=exam.exam_id,
            institution_id=exam.institution_id,
            channel="rest",
        )
        row = repo.get_upload(session, session_id)
        assert row is not None
    return row


def upload_status(deps: IngestDeps, principal: Principal, session_id: str) -> Row[Any]:
    """Return an upload's offset, length, expiry and state."""
    with deps.sessions.begin() as session:
        return _upload_for(session, principal, session_id, deps.clock())


class UploadRejected(Gone):
    """The upload's final chunk was refused; the session is over (tus answers 410)."""

    type_slug = "upload-rejected"


_OPEN, _APPENDING, _STORED, _REJECTED = "open", "appending", "stored", "rejected"
# An append lock older than this belongs to a request that died; another may take it over.
_STALE_LOCK = timedelta(minutes=15)
_PART = re.compile(r"^uploads/[^/]+/(?P<start>\d{20})-(?P<end>\d{20})\.g(?P<gen>\d+)\.part$")
_LEGACY_PART = re.compile(r"^uploads/[^/]+/(?P<start>\d{20})\.part$")


def _part_key(session_id: str, start: int, end: int, generation: int) -> str:
    return f"uploads/{session_id}/{start:020d}-{end:020d}.g{generation}.part"


def _part_start(key: str) -> int:
    match = _PART.match(key) or _LEGACY_PART.match(key)
    assert match is not None, key
    return int(match["start"])


def _lock_taken_at(deps: IngestDeps, row: Row[Any]) -> datetime:
    # Taking the lock sets expires_at to now + upload_expiry, so the lock's age is recoverable.
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
    return expires - deps.upload_expiry


def check_appendable(deps: IngestDeps, row: Row[Any], offset: int) -> None:
    """Raise the tus answer for a PATCH at `offset` that cannot go ahead now."""
    if row.status == _REJECTED:
        raise UploadRejected(
            f"upload {row.session_id} was rejected when its last chunk arrived; "
            "the final PATCH answered why; start a new upload",
            reason="upload_rejected",
        )
    if row.status == _STORED:
        raise Conflict(f"upload {row.session_id} is already stored", reason="upload_closed")
    if offset != row.upload_offset:
        raise Conflict(
            f"Upload-Offset {offset} does not match the server's offset {row.upload_offset}",
            reason="offset_mismatch",
            upload_offset=row.upload_offset,
        )
    if row.status == _APPENDING and deps.clock() - _lock_taken_at(deps, row) < _STALE_LOCK:
        raise Conflict(
            "another request is appending to this upload; ask HEAD for the offset and retry",
            reason="upload_busy",
            upload_offset=row.upload_offset,
        )


@dataclass(frozen=True)
class AppendResult:
    """Where an upload stands after a PATCH, and the instance if it just finished."""

    upload: Row[Any]
    stored: StoredInstance | None = None


def append_upload(
    deps: IngestDeps,
    principal: Principal,
    session_id: str,
    offset: int,
    part: SpooledFile,
    *,
    interrupted: bool,
) -> AppendResult:
    """Append a spooled chunk at `offset`; store the instance when the last byte arrives.

    One request at a time holds the session's append lock (compare-and-set on offset, state
    and generation); the others answer 409 and change nothing. A chunk becomes part of the
    upload only when its part object is written and the offset moves in one update.
    """
    now = deps.clock()
    with deps.sessions.begin() as session:
        row = _upload_for(session, principal, session_id, now)
    check_appendable(deps, row, offset)
    end = offset + part.size
    if end > row.upload_length:
        raise InvalidInput(
            f"chunk ends at {end}, past Upload-Length {row.upload_length}",
            reason="beyond_length",
        )
    if part.size == 0:
        if interrupted and row.status == _OPEN:
            with deps.sessions.begin() as session:
                repo.update_upload(session, session_id, interrupted=True)
        return AppendResult(row)
    with deps.sessions.begin() as session:
        locked = repo.lock_upload(
            session, session_id, offset, row.parts, row.status, expires_at=now + deps.upload_expiry
        )
    if not locked:
        raise Conflict(
            "another request appended to this upload first; ask HEAD for the offset",
            reason="upload_busy",
        )
    generation = row.parts + 1
    if end < row.upload_length:
        return _commit_part(deps, row, offset, end, part, generation, interrupted)
    try:
        stored = _finish_upload(deps, principal, row, part, generation)
    except BaseException:
        _reopen(deps, session_id, generation)
        raise
    if row.interrupted:
        deps.metrics.upload_resumes.inc()
    with deps.sessions.begin() as session:
        current = repo.get_upload(session, session_id)
    assert current is not None
    return AppendResult(current, stored)


def _commit_part(
    deps: IngestDeps,
    row: Row[Any],
    offset: int,
    end: int,
    part: SpooledFile,
    generation: int,
    interrupted: bool,
) -> AppendResult:
    """Write a middle chunk as its own part, then move the offset and let go of the lock."""
    key = _part_key(row.session_id, offset, end, generation)
    committed = False
    try:
        with part.path.open("rb") as handle:
            deps.store.put(key, handle, length=part.size)
        with deps.sessions.begin() as session:
            committed = repo.release_upload(
                session,
                row.session_id,
                generation,
                status=_OPEN,
                upload_offset=end,
                interrupted=interrupted,
                expires_at=deps.clock() + deps.upload_expiry,
            )
        if not committed:
            raise Conflict(
                "this request held the upload too long and another took it over; retry",
                reason="upload_busy",
            )
    finally:
        if not committed:
            _reopen(deps, row.session_id, generation)
            _delete_quietly(deps, key)
    if row.interrupted:
        deps.metrics.upload_resumes.inc()
    with deps.sessions.begin() as session:
        current = repo.get_upload(session, row.session_id)
    if current is None:
        raise Gone(f"upload {row.session_id} was terminated while the chunk arrived")
    return AppendResult(current)


def _reopen(deps: IngestDeps, session_id: str, generation: int, **values: Any) -> None:
    """Let go of an append lock this request still holds, leaving the offset where it was."""
    with deps.sessions.begin() as session:
        repo.release_upload(session, session_id, generation, status=_OPEN, **values)


def _delete_quietly(deps: IngestDeps, key: str) -> None:
    try:
        deps.store.delete(key)
    except Exception:
        # The sweep removes parts no committed offset points to; nothing is lost by waiting.
        log.exception("could not remove upload part %s; the sweep will", key)


def _chain(deps: IngestDeps, keys: Sequence[str], upto: int) -> tuple[list[str], int]:
    """Pick the committed part at each offset from 0 on; return them and where they end."""
    newest: dict[int, tuple[int, int, str]] = {}
    for key in keys:
        if match := _PART.match(key):
            start, end, generation = int(match["start"]), int(match["end"]), int(match["gen"])
        elif legacy := _LEGACY_PART.match(key):
            # Written before parts carried their end and generation; committed ones are kept.
            info = deps.store.stat(key)
            if info is None:
                continue
            start, generation = int(legacy["start"]), 0
            end = start + info.size
        else:
            continue
        # A later generation at the same offset superseded a request that never committed.
        if start not in newest or generation > newest[start][0]:
            newest[start] = (generation, end, key)
    chain: list[str] = []
    position = 0
    while position < upto and position in newest:
        _generation, end, key = newest[position]
        if end > upto:
            break
        chain.append(key)
        position = end
    return chain, position


def _assembled(deps: IngestDeps, chain: Sequence[str], final: SpooledFile) -> Iterator[bytes]:
    for key in chain:
        with deps.store.open(key) as chunks:
            yield from chunks
    with final.path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            yield chunk


def _finish_upload(
    deps: IngestDeps, principal: Principal, row: Row[Any], final: SpooledFile, generation: int
) -> StoredInstance:
    """Assemble committed parts plus the final chunk (streaming), store, then close the session.

    The final chunk is never written as a part: until the instance is stored the session stays
    locked at the final chunk's offset, so a crash leaves it resumable from there.
    """
    keys = list(deps.store.list(f"uploads/{row.session_id}/"))
    chain, reached = _chain(deps, keys, row.upload_offset)
    if reached != row.upload_offset:
        # A committed part went missing: let the client resend from the last intact byte.
        _reopen(deps, row.session_id, generation, upload_offset=reached)
        raise Conflict(
            f"the server holds {reached} bytes of this upload, not {row.upload_offset}; resume",
            reason="offset_mismatch",
            upload_offset=reached,
        )
    try:
        spooled = deps.spool.from_chunks(_assembled(deps, chain, final))
        with spooled:
            if spooled.size != row.upload_length:
                raise RuntimeError(f"assembled {spooled.size} bytes, expected {row.upload_length}")
            sent = json.loads(row.upload_metadata).get(APP_PIXEL_SPACING_KEY)
            stored = store_instance(
                deps,
                principal,
                spooled,
                channel=Channel.APP,
                exam_id=row.exam_id,
                app_pixel_spacing=parse_pixel_spacing(sent) if sent else None,
            )
    except ObjectNotFound as exc:
        # A committed part vanished under us: not the client's fault; the next try repairs.
        raise Conflict(
            "this upload's parts changed while it was assembled; ask HEAD and retry",
            reason="upload_busy",
        ) from exc
    except Problem as problem:
        if problem.extensions.get("reason") == "busy":
            raise  # another channel is storing the same instance: the client may retry
        with deps.sessions.begin() as session:
            repo.release_upload(session, row.session_id, generation, status=_REJECTED)
        _drop_parts(deps, row.session_id)
        raise
    with deps.sessions.begin() as session:
        repo.update_upload(
            session,
            row.session_id,
            status=_STORED,
            upload_offset=row.upload_length,
            sop_instance_uid=stored.ref.sop_instance_uid,
        )
    _drop_parts(deps, row.session_id)
    return stored


def _drop_parts(deps: IngestDeps, session_id: str) -> None:
    for key in list(deps.store.list(f"uploads/{session_id}/")):
        deps.store.delete(key)


def terminate_upload(deps: IngestDeps, principal: Principal, session_id: str) -> None:
    """Abandon an upload and free its parts (tus termination)."""
    with deps.sessions.begin() as session:
        _upload_for(session, principal, session_id, deps.clock())
        repo.delete_upload(session, session_id)
    _drop_parts(deps, session_id)


def expire_uploads(deps: IngestDeps) -> int:
    """Delete expired upload sessions and their parts; return how many went."""
    with deps.sessions.begin() as session:
        expired = repo.expired_uploads(session, deps.clock())
    for session_id in expired:
        _drop_parts(deps, session_id)
        with deps.sessions.begin() as session:
            repo.delete_upload(session, session_id)
    return len(expired)


@dataclass
class Recovery:
    """What a recovery pass put right."""

    reopened: int = 0
    parts_removed: int = 0
    claims_released: int = 0


def recover_uploads(deps: IngestDeps, *, sole_owner: bool) -> Recovery:
    """Reopen uploads and free instance claims of requests that died; drop orphaned parts.

    `sole_owner` (at start-up of a process that alone uses this database and store) treats
    every lock and claim as dead; otherwise only those older than the stale limits are.
    """
    now = deps.clock()
    done = Recovery()
    lock_cut = now if sole_owner else now - _STALE_LOCK
    with deps.sessions.begin() as session:
        locked = repo.locked_uploads(session, lock_cut + deps.upload_expiry + timedelta(seconds=1))
    for row in locked:
        if not sole_owner and now - _lock_taken_at(deps, row) < _STALE_LOCK:
            continue
        # The request died before its chunk committed: nothing it held was acknowledged.
        with deps.sessions.begin() as session:
            if repo.release_upload(session, row.session_id, row.parts, status=_OPEN):
                done.reopened += 1
    with deps.sessions.begin() as session:
        full = repo.full_open_uploads(session)
    for row in full:
        # Before the final chunk stayed locked until stored, a crash could leave an upload
        # "complete" with nothing stored: hand its never-acknowledged last part back.
        keys = list(deps.store.list(f"uploads/{row.session_id}/"))
        chain, reached = _chain(deps, keys, row.upload_offset)
        if reached == row.upload_offset and chain:
            reached = _part_start(chain[-1])
        with deps.sessions.begin() as session:
            repo.update_upload(session, row.session_id, upload_offset=reached)
        done.reopened += 1
    if sole_owner:
        # Elsewhere a stale claim is taken over by the next writer of the instance (_claim);
        # here every claim is dead, and waiting out _STALE_CLAIM would stall resumed uploads.
        with deps.sessions.begin() as session:
            claims = repo.pending_instances(session, now + timedelta(seconds=1))
        for claim in claims:
            # A pending row's object can only come from the dead writer: stored ones are indexed.
            deps.store.delete(claim.object_key)
            with deps.sessions.begin() as session:
                repo.delete_instance(session, claim.sop_instance_uid, "pending")
            done.claims_released += 1
    done.parts_removed = _sweep_parts(deps)
    return done


def _sweep_parts(deps: IngestDeps) -> int:
    """Delete parts no committed offset points to and no live lock is writing."""
    by_session: dict[str, list[str]] = {}
    # List before reading the rows: a part listed here was written under a lock already taken.
    for key in deps.store.list("uploads/"):
        by_session.setdefault(key.split("/")[1], []).append(key)
    removed = 0
    for session_id, keys in by_session.items():
        with deps.sessions.begin() as session:
            row = repo.get_upload(session, session_id)
        if row is None or row.status in (_STORED, _REJECTED):
            garbage = keys
        else:
            chain, _ = _chain(deps, keys, row.upload_offset)
            live = f".g{row.parts}.part" if row.status == _APPENDING else None
            garbage = [
                k for k in keys if k not in chain and not (live is not None and k.endswith(live))
            ]
        for key in garbage:
            _delete_quietly(deps, key)
            removed += 1
    return removed


# ---------------------------------------------------------------------------------------------
# Reads (QIDO-RS, WADO-RS, gRPC)
# ---------------------------------------------------------------------------------------------


def find_instances(
    deps: IngestDeps,
    principal: Principal,
    conditions: Sequence[Any],
    *,
    action: str,
    resource_id: str,
    order: Sequence[Any] = (),
) -> list[Row[Any]]:
    """Return visible stored instances matching `conditions`, auditing the read."""
    deps.access.require_any(principal, Action.READ)
    reach = deps.access.reachable(principal, Action.READ)
    with deps.sessions.begin() as session:
        rows = repo.search_instances(session, reach, conditions, order=order)
        repo.record_audit(
            session,
            at=deps.clock(),
            actor=principal,
            action=action,
            resource_type="study",
            resource_id=resource_id,
            institution_id=principal.institution,
            channel="dicomweb",
            outcome=f"ok:{len(rows)}",
        )
    return rows


def open_instance(deps: IngestDeps, row: Row[Any]) -> AbstractContextManager[Iterator[bytes]]:
    """Stream a stored instance's bytes exactly as received."""
    return deps.store.open(row.object_key)


def list_exam_instances(
    deps: IngestDeps, principal: Principal, exam_id: str, offset: int, limit: int
) -> tuple[list[Row[Any]], bool]:
    """Return one page of an exam's stored instances and whether more follow."""
    view = get_exam(deps, principal, exam_id, channel="grpc")
    page = view.instances[offset : offset + limit]
    return page, offset + limit < len(view.instances)
