"""Queries over ingest's tables; every function works inside the caller's session."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, delete, false, func, insert, select, update
from sqlalchemy.orm import Session

from sonobridge.common.access import Reachable
from sonobridge.common.auth import Principal
from sonobridge.ingest.adapters.orm import (
    AUDIT_OUTCOME_CHARS,
    audit_log,
    dimse_callers,
    exams,
    idempotency_keys,
    instances,
    manifest_items,
    upload_sessions,
)
from sonobridge.ingest.domain.callers import DimseCaller
from sonobridge.ingest.domain.model import ManifestEntry


def record_audit(
    session: Session,
    *,
    at: datetime,
    actor: Principal,
    action: str,
    resource_type: str,
    resource_id: str,
    institution_id: str | None,
    channel: str,
    outcome: str = "ok",
    detail: str | None = None,
) -> None:
    """Append one audit record."""
    session.execute(
        insert(audit_log).values(
            at=at,
            actor=actor.user,
            roles=",".join(sorted(actor.roles)),
            action=action,
            resource_type=resource_type,
            resource_id=resource_id[:255],
            institution_id=institution_id,
            channel=channel,
            # PostgreSQL refuses an over-long value (SQLite does not): a long rejection reason
            # such as rejected:unsupported_transfer_syntax must not turn the refusal into a 500.
            outcome=outcome[:AUDIT_OUTCOME_CHARS],
            detail=(detail or "")[:2000] or None,
        )
    )


def get_exam(session: Session, exam_id: str, *, for_update: bool = False) -> Row[Any] | None:
    """Return an exam row or None."""
    query = select(exams).where(exams.c.exam_id == exam_id)
    if for_update:
        query = query.with_for_update()
    return session.execute(query).first()


def exam_by_study(session: Session, study_uid: str) -> Row[Any] | None:
    """Return the exam bound to a StudyInstanceUID, or None."""
    return session.execute(select(exams).where(exams.c.study_instance_uid == study_uid)).first()


def insert_exam(session: Session, values: dict[str, Any]) -> None:
    """Insert an exam row."""
    session.execute(insert(exams).values(**values))


def update_exam(session: Session, exam_id: str, **values: Any) -> int:
    """Update an exam; return the affected row count."""
    return session.execute(
        update(exams).where(exams.c.exam_id == exam_id).values(**values)
    ).rowcount  # type: ignore[attr-defined]


def complete_exam_state(session: Session, exam_id: str, at: datetime) -> bool:
    """Mark an exam completed unless it already is; True if this call did it."""
    result = session.execute(
        update(exams)
        .where(exams.c.exam_id == exam_id, exams.c.state != "completed")
        .values(state="completed", completed_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def get_idempotency(session: Session, owner: str, key: str) -> Row[Any] | None:
    """Return a recorded Idempotency-Key, or None."""
    return session.execute(
        select(idempotency_keys).where(
            idempotency_keys.c.owner == owner, idempotency_keys.c.key == key
        )
    ).first()


def put_idempotency(session: Session, values: dict[str, Any]) -> None:
    """Record an Idempotency-Key."""
    session.execute(insert(idempotency_keys).values(**values))


def manifest_of(session: Session, exam_id: str) -> list[ManifestEntry]:
    """Return an exam's manifest in acquisition order (empty before it arrives)."""
    rows = session.execute(
        select(manifest_items.c.sop_instance_uid, manifest_items.c.sha256)
        .where(manifest_items.c.exam_id == exam_id)
        .order_by(manifest_items.c.position)
    ).all()
    return [ManifestEntry(r.sop_instance_uid, r.sha256) for r in rows]


def save_manifest(session: Session, exam_id: str, entries: Sequence[ManifestEntry]) -> None:
    """Store an exam's manifest."""
    session.execute(
        insert(manifest_items),
        [
            {
                "exam_id": exam_id,
                "sop_instance_uid": e.sop_instance_uid,
                "sha256": e.sha256,
                "position": i,
            }
            for i, e in enumerate(entries)
        ],
    )


def stored_instances_of_exam(session: Session, exam_id: str) -> list[Row[Any]]:
    """Return the stored instances linked to an exam, in storage order."""
    return list(
        session.execute(
            select(instances)
            .where(instances.c.exam_id == exam_id, instances.c.status == "stored")
            .order_by(instances.c.stored_at, instances.c.sop_instance_uid)
        ).all()
    )


def get_instance(session: Session, sop_uid: str) -> Row[Any] | None:
    """Return an instance row (pending or stored), or None."""
    return session.execute(select(instances).where(instances.c.sop_instance_uid == sop_uid)).first()


def insert_instance(session: Session, values: dict[str, Any]) -> None:
    """Insert an instance row."""
    session.execute(insert(instances).values(**values))


def update_instance(session: Session, sop_uid: str, **values: Any) -> None:
    """Update an instance row."""
    session.execute(
        update(instances).where(instances.c.sop_instance_uid == sop_uid).values(**values)
    )


def delete_instance(session: Session, sop_uid: str, status: str) -> None:
    """Delete an instance row if it still has `status`."""
    session.execute(
        delete(instances).where(
            instances.c.sop_instance_uid == sop_uid, instances.c.status == status
        )
    )


def visible_clause(reach: Reachable) -> Any:
    """Return a WHERE clause limiting instances to stored ones the access policy reaches."""
    stored = instances.c.status == "stored"
    if reach.institutions is None:
        return stored
    if not reach.institutions:
        return and_(stored, false())
    clauses = [stored, instances.c.institution_id.in_(sorted(reach.institutions))]
    if reach.consortium:
        clauses.append(instances.c.consortium_id == reach.consortium)
    return and_(*clauses)


def search_instances(
    session: Session,
    reach: Reachable,
    conditions: Sequence[Any],
    *,
    order: Sequence[Any] = (),
) -> list[Row[Any]]:
    """Return stored instances within `reach` matching every condition."""
    query = select(instances).where(visible_clause(reach), *conditions)
    if order:
        query = query.order_by(*order)
    return list(session.execute(query).all())


def owners_of_study(session: Session, study_uid: str) -> set[tuple[str, str]]:
    """Return the distinct (institution_id, consortium_id) of a study's indexed instances."""
    query = (
        select(instances.c.institution_id, instances.c.consortium_id)
        .where(instances.c.study_instance_uid == study_uid)
        .distinct()
    )
    return {(row.institution_id, row.consortium_id) for row in session.execute(query)}


def get_upload(session: Session, session_id: str) -> Row[Any] | None:
    """Return an upload session row or None."""
    return session.execute(
        select(upload_sessions).where(upload_sessions.c.session_id == session_id)
    ).first()


def insert_upload(session: Session, values: dict[str, Any]) -> None:
    """Insert an upload session."""
    session.execute(insert(upload_sessions).values(**values))


def lock_upload(
    session: Session, session_id: str, offset: int, generation: int, status: str, **values: Any
) -> bool:
    """Take the append lock at `offset` (compare-and-set); False if another request holds it."""
    result = session.execute(
        update(upload_sessions)
        .where(
            upload_sessions.c.session_id == session_id,
            upload_sessions.c.upload_offset == offset,
            upload_sessions.c.status == status,
            upload_sessions.c.parts == generation,
        )
        .values(status="appending", parts=generation + 1, **values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_upload(session: Session, session_id: str, generation: int, **values: Any) -> bool:
    """Update a session still locked by `generation`; False if the lock was taken over."""
    result = session.execute(
        update(upload_sessions)
        .where(
            upload_sessions.c.session_id == session_id,
            upload_sessions.c.status == "appending",
            upload_sessions.c.parts == generation,
        )
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def locked_uploads(session: Session, expiring_before: datetime) -> list[Row[Any]]:
    """Return sessions locked by an append whose expiry (set when locked) is before the cut."""
    return list(
        session.execute(
            select(upload_sessions).where(
                upload_sessions.c.status == "appending",
                upload_sessions.c.expires_at < expiring_before,
            )
        ).all()
    )


def full_open_uploads(session: Session) -> list[Row[Any]]:
    """Return open sessions whose offset reached their length (left by older versions)."""
    return list(
        session.execute(
            select(upload_sessions).where(
                upload_sessions.c.status == "open",
                upload_sessions.c.upload_offset >= upload_sessions.c.upload_length,
            )
        ).all()
    )


def pending_instances(session: Session, claimed_before: datetime) -> list[Row[Any]]:
    """Return write claims (pending instance rows) taken before the cut."""
    return list(
        session.execute(
            select(instances.c.sop_instance_uid, instances.c.object_key).where(
                instances.c.status == "pending", instances.c.claimed_at < claimed_before
            )
        ).all()
    )


def update_upload(session: Session, session_id: str, **values: Any) -> None:
    """Update an upload session."""
    session.execute(
        update(upload_sessions).where(upload_sessions.c.session_id == session_id).values(**values)
    )


def delete_upload(session: Session, session_id: str) -> None:
    """Delete an upload session row."""
    session.execute(delete(upload_sessions).where(upload_sessions.c.session_id == session_id))


def expired_uploads(session: Session, now: datetime, limit: int = 100) -> list[str]:
    """Return ids of sessions past their expiry."""
    rows = session.execute(
        select(upload_sessions.c.session_id).where(upload_sessions.c.expires_at < now).limit(limit)
    ).all()
    return [r.session_id for r in rows]


def count_instances(session: Session) -> int:
    """Return how many instance rows exist (any status)."""
    return int(session.execute(select(func.count()).select_from(instances)).scalar_one())


def metadata_of(row: Row[Any]) -> dict[str, Any]:
    """Return an instance's stored DICOM JSON."""
    return json.loads(row.metadata_json)


def get_dimse_caller(session: Session, ae_title: str) -> DimseCaller | None:
    """Return the registered caller with this (significant) AE title, or None."""
    row = session.execute(select(dimse_callers).where(dimse_callers.c.ae_title == ae_title)).first()
    return None if row is None else _caller(row)


def list_dimse_callers(session: Session) -> list[DimseCaller]:
    """Return every registered caller, by AE title."""
    rows = session.execute(select(dimse_callers).order_by(dimse_callers.c.ae_title)).all()
    return [_caller(row) for row in rows]


def put_dimse_caller(session: Session, caller: DimseCaller, *, by: str, at: datetime) -> bool:
    """Register or replace a caller; return True when it was new."""
    values = {
        "institution_id": caller.institution_id,
        "description": caller.description,
        "updated_by": by[:255],
        "updated_at": at,
    }
    changed = session.execute(
        update(dimse_callers).where(dimse_callers.c.ae_title == caller.ae_title).values(**values)
    ).rowcount  # type: ignore[attr-defined]
    if changed:
        return False
    session.execute(insert(dimse_callers).values(ae_title=caller.ae_title, **values))
    return True


def delete_dimse_caller(session: Session, ae_title: str) -> bool:
    """Remove a caller; return True when it was registered."""
    removed = session.execute(
        delete(dimse_callers).where(dimse_callers.c.ae_title == ae_title)
    ).rowcount  # type: ignore[attr-defined]
    return bool(removed)


def _caller(row: Row[Any]) -> DimseCaller:
    return DimseCaller(row.ae_title, row.institution_id, row.description)
