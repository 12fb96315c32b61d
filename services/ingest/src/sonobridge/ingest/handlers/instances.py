"""Storing one instance from any channel: validate, claim, write once, index, announce."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from sonobridge.common.access import Action
from sonobridge.common.audit import AuditRecord, audit_record
from sonobridge.common.auth import Principal
from sonobridge.common.problems import Conflict, Forbidden, InvalidInput, Problem
from sonobridge.ingest.domain.events import InstanceStored
from sonobridge.ingest.domain.model import Channel, Scope, parse_exam_id, writer_scope
from sonobridge.ingest.domain.records import Exam, Instance, object_key, spacing_text
from sonobridge.ingest.domain.validation import (
    InstanceDescription,
    check_description,
    check_size,
    check_study,
)
from sonobridge.ingest.handlers import IngestDeps
from sonobridge.ingest.handlers.exams import may, settle_exam, visible_exam
from sonobridge.ingest.handlers.leases import ClaimLease
from sonobridge.ingest.ports import Collision, SpooledFile, Work

log = logging.getLogger(__name__)

# How long a writer waits for a concurrent writer of the same instance to finish.
_CLAIM_WAIT_S = 30.0
# Up to this size an instance is written while its index row's transaction is open: one
# transaction and one commit instead of a claim and an update. Larger ones hold no transaction
# while their object streams, so their claim is committed first.
SMALL_INSTANCE_BYTES = 8 * 1024 * 1024

_T = TypeVar("_T")


@dataclass(frozen=True)
class StoredInstance:
    """The outcome of storing one instance."""

    instance: Instance
    duplicate: bool

    @property
    def exam_id(self) -> str | None:
        """Return the exam the instance belongs to, if any."""
        return self.instance.exam_id


def identify(deps: IngestDeps, spooled: SpooledFile) -> tuple[str, str]:
    """Return the (SOP class, SOP instance) UIDs a refused file names, or empty strings."""
    return deps.codec.peek_uids(spooled.path)


def _validate(deps: IngestDeps, spooled: SpooledFile) -> tuple[InstanceDescription, str]:
    """Check the file; return its description and its DICOM JSON header as text."""
    check_size(spooled.size, deps.max_instance_bytes)
    description, pixels, metadata = deps.codec.read_instance(spooled.path)
    check_description(description, pixels)
    # Rendered here, once: on the single node the row is built by whichever request leads
    # the group commit, while it holds the database's write lock.
    # A fresh tree of plain values: no cycle to look for (a tenth of the encoding's time).
    return description, json.dumps(metadata, check_circular=False)


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
    app_gestational_age_weeks: float | None = None,
) -> StoredInstance:
    """Validate, write once under dicom/{study}/{series}/{sop}.dcm, index, announce."""
    try:
        deps.access.require_any(principal, Action.WRITE)
        description, metadata = _validate(deps, spooled)
        check_study(description, expected_study, "the study in the request path")
        claim = _Claim(
            deps,
            principal,
            spooled,
            description,
            channel,
            exam_id,
            scope,
            app_gestational_age_weeks,
        )
        result, completed_type = _store_valid(claim, metadata, spacing_text(app_pixel_spacing))
    except Problem as problem:
        reason = str(problem.extensions.get("reason") or problem.type_slug)
        deps.metrics.rejections.labels(reason).inc()
        deps.metrics.uploads.labels(str(channel), "rejected").inc()
        _audit_rejection(deps, principal, channel, exam_id, problem)
        raise
    deps.metrics.uploads.labels(str(channel), "duplicate" if result.duplicate else "stored").inc()
    if not result.duplicate:
        deps.metrics.uploaded_bytes.labels(str(channel)).inc(spooled.size)
    if completed_type:
        deps.metrics.exams_completed.labels(completed_type).inc()
    return result


def _audit_rejection(
    deps: IngestDeps, principal: Principal, channel: Channel, exam_id: str | None, problem: Problem
) -> None:
    with deps.unit() as work:
        work.audit.append(
            audit_record(
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
        )


@dataclass(frozen=True)
class _Claim:
    """One writer's attempt at storing one instance."""

    deps: IngestDeps
    principal: Principal
    spooled: SpooledFile
    description: InstanceDescription
    channel: Channel
    exam_id: str | None
    scope: Scope | None
    app_gestational_age_weeks: float | None = None

    @property
    def sop(self) -> str:
        """Return the SOP Instance UID being stored."""
        return self.description.sop_instance_uid

    @property
    def key(self) -> str:
        """Return the write-once object key of the instance."""
        d = self.description
        return object_key(d.study_instance_uid, d.series_instance_uid, d.sop_instance_uid)

    def audited(self, at: datetime, institution_id: str, outcome: str = "ok") -> AuditRecord:
        """Return the audit record of this store, of an instance `institution_id` owns."""
        return audit_record(
            at=at,
            actor=self.principal,
            action="store_instance",
            institution_id=institution_id,
            resource_type="instance",
            resource_id=self.sop,
            channel=str(self.channel),
            outcome=outcome,
        )


def _resolve_exam(claim: _Claim, work: Work) -> Exam | None:
    """Find the exam an instance belongs to and check the instance agrees with it."""
    deps, principal, description = claim.deps, claim.principal, claim.description
    study = description.study_instance_uid
    owners, by_study = work.instances.owners_and_exam_of_study(study)
    # A study that arrived without an exam (STOW-RS, C-STORE) belongs to whoever stored it first.
    for owner in owners:
        if not deps.access.may(principal, Action.WRITE, owner.institution_id, owner.consortium_id):
            raise Forbidden(f"study {study} belongs to another institution")
    if claim.channel == Channel.AI:
        # Derived objects join the study, not the exam: its manifest and counts are the app's.
        return None
    if claim.exam_id is not None:
        exam = visible_exam(deps, work, principal, claim.exam_id, Action.WRITE)
        if exam.study_instance_uid:
            check_study(description, exam.study_instance_uid, f"exam {exam.exam_id}")
        elif by_study is not None and by_study.exam_id != exam.exam_id:
            raise InvalidInput(
                f"StudyInstanceUID {study} belongs to another exam", reason="uid_mismatch"
            )
        return exam
    if by_study is not None and not may(deps, principal, Action.WRITE, by_study):
        raise Forbidden(f"study {study} belongs to another institution")
    return by_study


def _pending(
    claim: _Claim, exam: Exam | None, metadata: str, spacing: str | None, now: datetime
) -> Instance:
    d, spooled = claim.description, claim.spooled
    owner = exam.scope if exam else (claim.scope or writer_scope(claim.principal))
    return Instance(
        sop_instance_uid=d.sop_instance_uid,
        status="pending",
        claimed_at=now,
        study_instance_uid=d.study_instance_uid,
        series_instance_uid=d.series_instance_uid,
        sop_class_uid=d.sop_class_uid,
        exam_id=exam.exam_id if exam else None,
        object_key=claim.key,
        sha256=spooled.sha256,
        size_bytes=spooled.size,
        transfer_syntax_uid=d.transfer_syntax_uid,
        number_of_frames=d.number_of_frames,
        rows=d.rows,
        columns=d.columns,
        modality=d.modality[:16],
        body_part=d.body_part[:64],
        patient_id=d.patient_id[:64],
        patient_name=d.patient_name[:324],
        study_date=d.study_date[:8],
        study_time=d.study_time[:32],
        accession_number=d.accession_number[:64],
        study_description=d.study_description[:255],
        study_id=d.study_id[:32],
        series_number=d.series_number,
        series_description=d.series_description[:255],
        instance_number=d.instance_number,
        device_serial=(exam.device_serial if exam else d.device_serial)[:128],
        operator_id=exam.operator_id if exam else claim.principal.user,
        institution_id=owner.institution_id,
        consortium_id=owner.consortium_id,
        received_via=str(claim.channel),
        stored_at=None,
        metadata_json=metadata,
        app_pixel_spacing=spacing,
        app_gestational_age_weeks=claim.app_gestational_age_weeks,
    )


def _admit(claim: _Claim, work: Work, now: datetime) -> tuple[Exam | None, Instance | None]:
    """Check the instance against its exam and the index; return (exam, indexed instance)."""
    exam = _admit_exam(claim, work)
    existing = work.instances.get(claim.sop)
    return exam, (None if existing is None else _settle_existing(claim, work, existing, now))


def _admit_exam(claim: _Claim, work: Work) -> Exam | None:
    """Find the instance's exam; refuse an instance its manifest lists with another SHA-256."""
    exam = _resolve_exam(claim, work)
    sop = claim.sop
    if exam is not None:
        listed = {e.sop_instance_uid: e.sha256 for e in work.exams.manifest(exam.exam_id)}
        if sop in listed and listed[sop] != claim.spooled.sha256:
            raise Conflict(
                f"instance {sop} differs from the SHA-256 in exam {exam.exam_id}'s manifest",
                reason="manifest_mismatch",
            )
    return exam


def _settle_existing(
    claim: _Claim, work: Work, existing: Instance, now: datetime
) -> Instance | None:
    """Answer with an indexed twin, wait on a fresh claim, or release a dead writer's claim."""
    if existing.status == "stored" or existing.sha256 != claim.spooled.sha256:
        return _already_stored(claim, existing)
    # A live writer renews its claim (leases.py): one not renewed for a lease is dead or frozen.
    if now - existing.claimed_at < claim.deps.upload_lock_lease:
        raise _Busy()
    if not work.instances.release(claim.sop, existing.claimed_at):
        raise _Busy()  # renewed meanwhile: its writer lives
    return None


def _claimed(claim: _Claim, attempt: Callable[[], _T]) -> _T | Instance:
    """Run `attempt` until no other writer holds the instance; an indexed twin is returned."""
    deps, sop = claim.deps, claim.sop
    deadline = time.monotonic() + _CLAIM_WAIT_S
    while True:
        try:
            return attempt()
        except _OtherFile as other:
            if claim.exam_id is not None:
                # The app's manifest names each file's SHA-256: its upload must be the stored file.
                raise _conflict(sop, "file") from None
            if not _same_dataset(deps, other.instance, claim.spooled):
                raise _conflict(sop, "dataset") from None
            if not may(deps, claim.principal, Action.WRITE, other.instance):
                raise Conflict(f"instance {sop} is already stored", reason="taken") from None
            return other.instance
        except (_Busy, Collision):
            # Another writer holds the claim for this SOP instance: wait for its outcome.
            if time.monotonic() > deadline:
                raise Conflict(
                    f"instance {sop} is being stored by another request; retry later",
                    reason="busy",
                ) from None
            time.sleep(0.05)


def _take(claim: _Claim, metadata: str, spacing: str | None) -> Instance | ClaimLease:
    """Insert a pending index row (the write claim) and lease it; the stored instance if there."""

    def attempt() -> Instance | ClaimLease:
        now = claim.deps.clock()
        with claim.deps.unit() as work:
            exam, existing = _admit(claim, work, now)
            if existing is not None:
                return existing
            work.instances.claim(_pending(claim, exam, metadata, spacing, now))
        return ClaimLease(claim.deps, claim.sop, now)

    return _claimed(claim, attempt)


def _already_stored(claim: _Claim, existing: Instance) -> Instance:
    """Answer for an instance indexed before, or claimed with other bytes."""
    if existing.sha256 != claim.spooled.sha256:
        if existing.status != "stored":
            raise _conflict(claim.sop, "file")
        # Compared outside the transaction: it reads the stored object.
        raise _OtherFile(existing)
    if not may(claim.deps, claim.principal, Action.WRITE, existing):
        raise Conflict(f"instance {claim.sop} is already stored", reason="taken")
    return existing


def _conflict(sop: str, what: str) -> Conflict:
    return Conflict(
        f"instance {sop} is already stored with a different {what}", reason="duplicate_conflict"
    )


def _same_dataset(deps: IngestDeps, stored: Instance, spooled: SpooledFile) -> bool:
    """Tell whether a file differing from a stored one holds the same dataset."""
    # An instance's identity is its dataset (PS3.10 7.1): the File Meta differs by channel
    # (STOW client, the C-STORE receiver's own implementation UID and source AE title).
    with spooled.path.open("rb") as handle:
        received = deps.codec.dataset_sha256(iter(lambda: handle.read(1024 * 1024), b""))
    with deps.store.open(stored.object_key) as chunks:
        return deps.codec.dataset_sha256(chunks) == received


class _Busy(Exception):
    """Another writer holds a fresh claim on the instance."""


class _OtherFile(Exception):
    """The instance is stored as another file; its dataset may still be the same."""

    def __init__(self, instance: Instance) -> None:
        super().__init__(instance.sop_instance_uid)
        self.instance = instance


def _store_valid(
    claim: _Claim, metadata: str, spacing: str | None
) -> tuple[StoredInstance, str | None]:
    if claim.spooled.size <= SMALL_INSTANCE_BYTES:
        return _store_small(claim, metadata, spacing)
    lease = _take(claim, metadata, spacing)
    if isinstance(lease, Instance):
        return _store_duplicate(claim, lease, spacing)
    deps, sop = claim.deps, claim.sop
    try:
        with lease.renewed():
            _put(claim)
        with deps.unit() as work:
            now = deps.clock()
            if not work.instances.mark_stored(sop, now, lease.claimed_at):
                # Frozen past its lease: another writer took the claim over, with these bytes.
                raise Conflict(f"instance {sop} was taken over; retry", reason="busy")
            stored = work.instances.get(sop)
            assert stored is not None
            completed = _announce(claim, work, stored, now)
        return StoredInstance(stored, False), completed
    except BaseException:
        # Leave nothing behind, unless a writer that took the claim over may have stored it.
        with deps.unit() as work:
            ours = work.instances.release(sop, lease.claimed_at)
        if ours:
            _drop_object(claim)
        raise


def _store_small(
    claim: _Claim, metadata: str, spacing: str | None
) -> tuple[StoredInstance, str | None]:
    """Insert the row as stored, publish the object and announce it, all in one transaction."""
    deps = claim.deps
    # The object's bytes are written and synced before the transaction: on the single node
    # its write lock is then held for a rename, not for an fsync.
    staged = deps.store.stage(claim.key, claim.spooled.path, content_type="application/dicom")
    published = False  # and not yet indexed

    def step(work: Work) -> tuple[StoredInstance, str | None] | Instance:
        nonlocal published
        now = deps.clock()
        exam = _admit_exam(claim, work)
        pending = _pending(claim, exam, metadata, spacing, now)
        stored = replace(pending, status="stored", stored_at=now)
        # Without an exam nothing announced depends on the row: queued first, the event and
        # audit record go in with it (one statement on PostgreSQL), or not at all.
        announced = exam is None
        if announced:
            _announce(claim, work, stored, now)  # no exam, so no exam completes
        # The row first: its unique key keeps a concurrent writer of the same
        # instance (waiting on it) from ever writing this object.
        if not work.try_claim_announced(stored):
            existing = work.instances.get(claim.sop)
            if existing is None:
                raise _Busy()  # its writer gave up meanwhile: try again
            twin = _settle_existing(claim, work, existing, now)
            if twin is not None:
                return twin
            work.instances.claim(stored)
            announced = False
        staged.publish()
        published = True
        try:
            # Links, then one folder fsync, then the commit: an acknowledged instance survives
            # a power loss, and a crash before the commit leaves an object start-up drops.
            work.before_commit(staged.durable_publish)
            completed = None if announced else _announce(claim, work, stored, now)
        except BaseException:
            # Dropped before the row's savepoint goes, so no other writer has published it.
            _drop_object(claim)
            published = False
            raise
        return StoredInstance(stored, False), completed

    def attempt() -> tuple[StoredInstance, str | None] | Instance:
        nonlocal published
        published = False
        try:
            # On the single node concurrent requests' rows share one transaction and commit.
            return deps.together(step)
        except BaseException:
            if published:  # its transaction did not commit: no index row points to it
                _drop_object(claim)
            raise

    try:
        outcome = _claimed(claim, attempt)
    finally:
        staged.discard()
    if isinstance(outcome, Instance):
        return _store_duplicate(claim, outcome, spacing)
    return outcome


def _put(claim: _Claim) -> None:
    with claim.spooled.path.open("rb") as handle:
        claim.deps.store.put(
            claim.key, handle, length=claim.spooled.size, content_type="application/dicom"
        )


def _drop_object(claim: _Claim) -> None:
    try:
        claim.deps.store.delete(claim.key)
    except Exception:
        log.exception("could not remove object %s after a failed store", claim.key)


def _announce(claim: _Claim, work: Work, stored: Instance, now: datetime) -> str | None:
    """Bind the exam's study, queue InstanceStored, audit; return the completed exam type."""
    deps = claim.deps
    exam = work.exams.get(stored.exam_id) if stored.exam_id else None
    if exam is not None and not exam.study_instance_uid:
        work.exams.bind_study(exam.exam_id, claim.description.study_instance_uid)
        exam = replace(exam, study_instance_uid=claim.description.study_instance_uid)
    work.emit(InstanceStored(stored, exam, claim.channel, False, now))
    work.audit.append(claim.audited(now, stored.institution_id))
    return settle_exam(deps, work, exam.exam_id) if exam is not None else None


def _store_duplicate(
    claim: _Claim, existing: Instance, spacing: str | None
) -> tuple[StoredInstance, str | None]:
    deps, sop = claim.deps, claim.sop
    completed = None
    with deps.unit() as work:
        if claim.exam_id is not None and existing.exam_id is None:
            # Arrived earlier by STOW-RS or C-STORE: the app's copy links it to the exam.
            exam_id = parse_exam_id(claim.exam_id)
            work.instances.link(sop, exam_id, spacing, claim.app_gestational_age_weeks)
            existing = replace(
                existing,
                exam_id=exam_id,
                app_pixel_spacing=spacing,
                app_gestational_age_weeks=claim.app_gestational_age_weeks,
            )
            completed = settle_exam(deps, work, exam_id)
        exam = work.exams.get(existing.exam_id) if existing.exam_id else None
        work.emit(InstanceStored(existing, exam, claim.channel, True, deps.clock()))
        work.audit.append(claim.audited(deps.clock(), existing.institution_id, "duplicate"))
    return StoredInstance(existing, True), completed
