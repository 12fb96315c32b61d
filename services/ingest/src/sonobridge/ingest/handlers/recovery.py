"""Upkeep of uploads and claims: expire old sessions, recover what dead requests left."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sonobridge.ingest.domain.uploads import (
    APPENDING,
    OPEN,
    REJECTED,
    STORED,
    lock_taken_at,
    part_start,
    parts_prefix,
)
from sonobridge.ingest.handlers import IngestDeps
from sonobridge.ingest.handlers.uploads import chain, delete_quietly, drop_parts


def expire_uploads(deps: IngestDeps) -> int:
    """Delete expired upload sessions and their parts; return how many went."""
    with deps.unit() as work:
        expired = work.uploads.expired(deps.clock())
    for session_id in expired:
        drop_parts(deps, session_id)
        with deps.unit() as work:
            work.uploads.delete(session_id)
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
    every lock and claim as dead; otherwise only locks whose lease ran out (their holders
    renew it while alive) and claims older than the stale limit are.
    """
    now = deps.clock()
    done = Recovery()
    lock_cut = now if sole_owner else now - deps.upload_lock_lease
    with deps.unit() as work:
        locked = work.uploads.locked(lock_cut + deps.upload_expiry + timedelta(seconds=1))
    for upload in locked:
        if (
            not sole_owner
            and now - lock_taken_at(upload, deps.upload_expiry) < deps.upload_lock_lease
        ):
            continue
        # The request died before its chunk committed: nothing it held was acknowledged.
        with deps.unit() as work:
            if work.uploads.release(upload.session_id, upload.parts, status=OPEN):
                done.reopened += 1
    with deps.unit() as work:
        full = work.uploads.full_open()
    for upload in full:
        # Before the final chunk stayed locked until stored, a crash could leave an upload
        # "complete" with nothing stored: hand its never-acknowledged last part back.
        keys = list(deps.store.list(parts_prefix(upload.session_id)))
        parts, reached = chain(deps, keys, upload.upload_offset)
        if reached == upload.upload_offset and parts:
            reached = part_start(parts[-1])
        with deps.unit() as work:
            work.uploads.update(upload.session_id, upload_offset=reached)
        done.reopened += 1
    if sole_owner:
        # Elsewhere a stale claim is taken over by the next writer of the instance; here
        # every claim is dead, and waiting out the stale limit would stall resumed uploads.
        with deps.unit() as work:
            claims = work.instances.claims_before(now + timedelta(seconds=1))
        for claim in claims:
            # A pending row's object can only come from the dead writer: stored ones are indexed.
            deps.store.delete(claim.object_key)
            with deps.unit() as work:
                work.instances.release(claim.sop_instance_uid)
            done.claims_released += 1
    done.parts_removed = _sweep_parts(deps)
    return done


def drop_unindexed(deps: IngestDeps, keys: Iterable[str]) -> int:
    """Delete the objects of instance keys no index row points to (a publish never committed).

    A pending row keeps its object here: recover_uploads releases it together with its claim.
    """
    dropped = 0
    for key in keys:
        sop = key.rpartition("/")[2].removesuffix(".dcm")
        with deps.unit() as work:
            indexed = work.instances.get(sop)
        if indexed is None or indexed.object_key != key:
            deps.store.delete(key)
            dropped += 1
    return dropped


def _sweep_parts(deps: IngestDeps) -> int:
    """Delete parts no committed offset points to and no live lock is writing."""
    by_session: dict[str, list[str]] = {}
    # List before reading the rows: a part listed here was written under a lock already taken.
    for key in deps.store.list("uploads/"):
        by_session.setdefault(key.split("/")[1], []).append(key)
    removed = 0
    for session_id, keys in by_session.items():
        with deps.unit() as work:
            upload = work.uploads.get(session_id)
        if upload is None or upload.status in (STORED, REJECTED):
            garbage = keys
        else:
            parts, _ = chain(deps, keys, upload.upload_offset)
            live = f".g{upload.parts}.part" if upload.status == APPENDING else None
            garbage = [
                k for k in keys if k not in parts and not (live is not None and k.endswith(live))
            ]
        for key in garbage:
            delete_quietly(deps, key)
            removed += 1
    return removed
