"""Resumable uploads (tus 1.0): open, ask the offset, append chunks, terminate."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sonobridge.common.access import Action
from sonobridge.common.audit import audit_record
from sonobridge.common.auth import Principal
from sonobridge.common.objects.ports import ObjectNotFound
from sonobridge.common.problems import Conflict, InvalidInput, NotFound, Problem
from sonobridge.ingest.domain.model import Channel
from sonobridge.ingest.domain.records import UploadSession
from sonobridge.ingest.domain.uploads import (
    APPENDING,
    LEASE_RENEWALS,
    LEGACY_PART,
    OPEN,
    PART,
    REJECTED,
    STORED,
    Gone,
    UploadBusy,
    UploadRejected,
    lease_left,
    part_key,
    parts_prefix,
)
from sonobridge.ingest.domain.validation import (
    APP_GESTATIONAL_AGE_KEY,
    APP_PIXEL_SPACING_KEY,
    check_size,
    parse_gestational_age,
    parse_pixel_spacing,
)
from sonobridge.ingest.handlers import IngestDeps
from sonobridge.ingest.handlers.exams import visible_exam
from sonobridge.ingest.handlers.instances import StoredInstance, store_instance
from sonobridge.ingest.handlers.leases import leased
from sonobridge.ingest.ports import SpooledFile, Work

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppendResult:
    """Where an upload stands after a PATCH, and the instance if it just finished."""

    upload: UploadSession
    stored: StoredInstance | None = None


def _upload_for(work: Work, principal: Principal, session_id: str, now: datetime) -> UploadSession:
    upload = work.uploads.get(session_id)
    if upload is None or upload.owner != principal.user:
        raise NotFound(f"no upload {session_id}")
    if upload.expires_at < now:
        raise Gone(f"upload {session_id} expired at {upload.expires_at.isoformat()}")
    return upload


def create_upload(
    deps: IngestDeps,
    principal: Principal,
    exam_id: str,
    length: int,
    upload_metadata: dict[str, str],
) -> UploadSession:
    """Open a resumable upload of one instance into an exam."""
    deps.access.require_any(principal, Action.WRITE)
    check_size(length, deps.max_instance_bytes)
    if length <= 0:
        raise InvalidInput("Upload-Length must be positive", reason="bad_upload_length")
    if APP_PIXEL_SPACING_KEY in upload_metadata:
        parse_pixel_spacing(upload_metadata[APP_PIXEL_SPACING_KEY])
    if APP_GESTATIONAL_AGE_KEY in upload_metadata:
        parse_gestational_age(upload_metadata[APP_GESTATIONAL_AGE_KEY])
    now = deps.clock()
    with deps.unit() as work:
        exam = visible_exam(deps, work, principal, exam_id, Action.WRITE)
        upload = UploadSession(
            session_id=str(uuid.uuid4()),
            exam_id=exam.exam_id,
            owner=principal.user,
            upload_length=length,
            upload_offset=0,
            upload_metadata=json.dumps(upload_metadata),
            status=OPEN,
            parts=0,
            interrupted=False,
            created_at=now,
            expires_at=now + deps.upload_expiry,
        )
        work.uploads.add(upload)
        work.audit.append(
            audit_record(
                at=now,
                actor=principal,
                action="create_upload",
                resource_type="exam",
                resource_id=exam.exam_id,
                institution_id=exam.institution_id,
                channel="rest",
            )
        )
    return upload


def upload_status(deps: IngestDeps, principal: Principal, session_id: str) -> UploadSession:
    """Return an upload's offset, length, expiry and state."""
    with deps.unit() as work:
        return _upload_for(work, principal, session_id, deps.clock())


def check_appendable(deps: IngestDeps, upload: UploadSession, offset: int) -> None:
    """Raise the tus answer for a PATCH at `offset` that cannot go ahead now."""
    if upload.status == REJECTED:
        raise UploadRejected(
            f"upload {upload.session_id} was rejected when its last chunk arrived; "
            "the final PATCH answered why; start a new upload",
            reason="upload_rejected",
        )
    if upload.status == STORED:
        raise Conflict(f"upload {upload.session_id} is already stored", reason="upload_closed")
    if offset != upload.upload_offset:
        raise Conflict(
            f"Upload-Offset {offset} does not match the server's offset {upload.upload_offset}",
            reason="offset_mismatch",
            upload_offset=upload.upload_offset,
        )
    left = lease_left(upload, deps.upload_expiry, deps.upload_lock_lease, deps.clock())
    if upload.status == APPENDING and left > timedelta(0):
        # Its holder renews the lease while it writes; a dead or frozen one lets it run out.
        raise UploadBusy(
            "another request is appending to this upload; ask HEAD for the offset and retry",
            retry_after=min(left, deps.upload_lock_lease / LEASE_RENEWALS),
            upload_offset=upload.upload_offset,
        )


def commit_due(
    deps: IngestDeps, offset: int, received: int, length: int, seconds: float, *, checksummed: bool
) -> bool:
    """Say whether a PATCH still streaming should commit the `received` bytes as a part now.

    Only a middle piece is committed early (the final one is stored whole), and never one of a
    checksummed chunk, which can be verified only once it has fully arrived.
    """
    if checksummed or received == 0 or offset + received >= length:
        return False
    return received >= deps.upload_commit_bytes or seconds >= deps.upload_commit_seconds


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
    with deps.unit() as work:
        upload = _upload_for(work, principal, session_id, now)
    check_appendable(deps, upload, offset)
    end = offset + part.size
    if end > upload.upload_length:
        raise InvalidInput(
            f"chunk ends at {end}, past Upload-Length {upload.upload_length}",
            reason="beyond_length",
        )
    if part.size == 0:
        if interrupted and upload.status == OPEN:
            with deps.unit() as work:
                work.uploads.update(session_id, interrupted=True)
        return AppendResult(upload)
    with deps.unit() as work:
        locked = work.uploads.lock(
            session_id, offset, upload.parts, upload.status, now + deps.upload_expiry
        )
    if not locked:
        raise UploadBusy(
            "another request appended to this upload first; ask HEAD for the offset",
            retry_after=timedelta(seconds=1),
        )
    generation = upload.parts + 1
    with leased(deps, session_id, generation):
        if end < upload.upload_length:
            return _commit_part(deps, upload, offset, end, part, generation, interrupted)
        try:
            stored = _finish_upload(deps, principal, upload, part, generation)
        except BaseException:
            reopen(deps, session_id, generation)
            raise
    if upload.interrupted:
        deps.metrics.upload_resumes.inc()
    with deps.unit() as work:
        current = work.uploads.get(session_id)
    assert current is not None
    return AppendResult(current, stored)


def _commit_part(
    deps: IngestDeps,
    upload: UploadSession,
    offset: int,
    end: int,
    part: SpooledFile,
    generation: int,
    interrupted: bool,
) -> AppendResult:
    """Write a middle chunk as its own part, then move the offset and let go of the lock."""
    key = part_key(upload.session_id, offset, end, generation)
    committed = False
    try:
        with part.path.open("rb") as handle:
            deps.store.put(key, handle, length=part.size)
        with deps.unit() as work:
            committed = work.uploads.release(
                upload.session_id,
                generation,
                status=OPEN,
                upload_offset=end,
                interrupted=interrupted,
                expires_at=deps.clock() + deps.upload_expiry,
            )
        if not committed:
            raise UploadBusy(
                "this request lost the upload's lock to another (its lease ran out); retry",
                retry_after=timedelta(seconds=1),
            )
    finally:
        if not committed:
            reopen(deps, upload.session_id, generation)
            delete_quietly(deps, key)
    if upload.interrupted:
        deps.metrics.upload_resumes.inc()
    with deps.unit() as work:
        current = work.uploads.get(upload.session_id)
    if current is None:
        raise Gone(f"upload {upload.session_id} was terminated while the chunk arrived")
    return AppendResult(current)


def reopen(
    deps: IngestDeps, session_id: str, generation: int, upload_offset: int | None = None
) -> None:
    """Let go of an append lock this request still holds, leaving the offset where it was."""
    with deps.unit() as work:
        work.uploads.release(session_id, generation, status=OPEN, upload_offset=upload_offset)


def delete_quietly(deps: IngestDeps, key: str) -> None:
    """Delete an upload part; a failure is left to the sweep."""
    try:
        deps.store.delete(key)
    except Exception:
        # The sweep removes parts no committed offset points to; nothing is lost by waiting.
        log.exception("could not remove upload part %s; the sweep will", key)


def chain(deps: IngestDeps, keys: Sequence[str], upto: int) -> tuple[list[str], int]:
    """Pick the committed part at each offset from 0 on; return them and where they end."""
    newest: dict[int, tuple[int, int, str]] = {}
    for key in keys:
        if match := PART.match(key):
            start, end, generation = int(match["start"]), int(match["end"]), int(match["gen"])
        elif legacy := LEGACY_PART.match(key):
            # Written before parts carried their end and generation; committed ones are kept.
            stat = deps.store.stat(key)
            if stat is None:
                continue
            start, generation = int(legacy["start"]), 0
            end = start + stat.size
        else:
            continue
        # A later generation at the same offset superseded a request that never committed.
        if start not in newest or generation > newest[start][0]:
            newest[start] = (generation, end, key)
    found: list[str] = []
    position = 0
    while position < upto and position in newest:
        _generation, end, key = newest[position]
        if end > upto:
            break
        found.append(key)
        position = end
    return found, position


def _assembled(deps: IngestDeps, keys: Sequence[str], final: SpooledFile) -> Iterator[bytes]:
    for key in keys:
        with deps.store.open(key) as chunks:
            yield from chunks
    with final.path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            yield chunk


def _finish_upload(
    deps: IngestDeps,
    principal: Principal,
    upload: UploadSession,
    final: SpooledFile,
    generation: int,
) -> StoredInstance:
    """Assemble committed parts plus the final chunk (streaming), store, then close the session.

    The final chunk is never written as a part: until the instance is stored the session stays
    locked at the final chunk's offset, so a crash leaves it resumable from there.
    """
    keys = list(deps.store.list(parts_prefix(upload.session_id)))
    parts, reached = chain(deps, keys, upload.upload_offset)
    if reached != upload.upload_offset:
        # A committed part went missing: let the client resend from the last intact byte.
        reopen(deps, upload.session_id, generation, upload_offset=reached)
        raise Conflict(
            f"the server holds {reached} bytes of this upload, not {upload.upload_offset}; resume",
            reason="offset_mismatch",
            upload_offset=reached,
        )
    try:
        spooled = deps.spool.from_chunks(_assembled(deps, parts, final))
        with spooled:
            if spooled.size != upload.upload_length:
                raise RuntimeError(
                    f"assembled {spooled.size} bytes, expected {upload.upload_length}"
                )
            declared = json.loads(upload.upload_metadata)
            sent = declared.get(APP_PIXEL_SPACING_KEY)
            sent_age = declared.get(APP_GESTATIONAL_AGE_KEY)
            stored = store_instance(
                deps,
                principal,
                spooled,
                channel=Channel.APP,
                exam_id=upload.exam_id,
                app_pixel_spacing=parse_pixel_spacing(sent) if sent else None,
                app_gestational_age_weeks=parse_gestational_age(sent_age) if sent_age else None,
            )
    except ObjectNotFound as exc:
        # A committed part vanished under us: not the client's fault; the next try repairs.
        raise UploadBusy(
            "this upload's parts changed while it was assembled; ask HEAD and retry",
            retry_after=timedelta(seconds=1),
        ) from exc
    except Problem as problem:
        if problem.extensions.get("reason") == "busy":
            raise  # another channel is storing the same instance: the client may retry
        with deps.unit() as work:
            work.uploads.release(upload.session_id, generation, status=REJECTED)
        drop_parts(deps, upload.session_id)
        raise
    with deps.unit() as work:
        work.uploads.update(
            upload.session_id,
            status=STORED,
            upload_offset=upload.upload_length,
            sop_instance_uid=stored.instance.sop_instance_uid,
        )
    drop_parts(deps, upload.session_id)
    return stored


def drop_parts(deps: IngestDeps, session_id: str) -> None:
    """Delete every part of an upload."""
    for key in list(deps.store.list(parts_prefix(session_id))):
        deps.store.delete(key)


def terminate_upload(deps: IngestDeps, principal: Principal, session_id: str) -> None:
    """Abandon an upload and free its parts (tus termination)."""
    with deps.unit() as work:
        _upload_for(work, principal, session_id, deps.clock())
        work.uploads.delete(session_id)
    drop_parts(deps, session_id)
