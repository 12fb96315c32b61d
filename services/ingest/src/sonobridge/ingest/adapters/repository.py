"""SQLAlchemy repositories over ingest's tables and the unit of work that holds them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, and_, delete, false, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sonobridge.common.access import Reachable
from sonobridge.common.auth import Principal
from sonobridge.common.delivery import Outbox
from sonobridge.ingest.adapters import messages
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
from sonobridge.ingest.domain.events import Event
from sonobridge.ingest.domain.model import ManifestEntry, Scope
from sonobridge.ingest.domain.query import Criterion
from sonobridge.ingest.domain.records import Exam, IdempotencyRecord, Instance, UploadSession
from sonobridge.ingest.ports import Collision, UnitOfWork, Work

SOURCE = "ingest"
_Record = TypeVar("_Record", Exam, Instance, UploadSession, IdempotencyRecord)
# QIDO-RS answers in study, series and instance order, so pages are stable.
_SEARCH_ORDER = (
    instances.c.study_instance_uid,
    instances.c.series_number,
    instances.c.series_instance_uid,
    instances.c.instance_number,
    instances.c.sop_instance_uid,
)


def _aware(value: Any) -> Any:
    # SQLite drops the zone of timestamps it stores; every one was written as UTC.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _record(kind: type[_Record], row: Row[Any]) -> _Record:
    values = row._mapping
    return kind(**{f.name: _aware(values[f.name]) for f in fields(kind) if f.name in values})


def _optional(kind: type[_Record], row: Row[Any] | None) -> _Record | None:
    return None if row is None else _record(kind, row)


def _values(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _changed(result: Any) -> bool:
    return bool(result.rowcount)


@dataclass
class SqlExams:
    """Exams, manifests and Idempotency-Keys in one session."""

    session: Session

    def get(self, exam_id: str, *, for_update: bool = False) -> Exam | None:
        """Return an exam, row-locked until commit when asked."""
        query = select(exams).where(exams.c.exam_id == exam_id)
        if for_update:
            query = query.with_for_update()
        return _optional(Exam, self.session.execute(query).first())

    def by_study(self, study_uid: str) -> Exam | None:
        """Return the exam bound to a StudyInstanceUID."""
        query = select(exams).where(exams.c.study_instance_uid == study_uid)
        return _optional(Exam, self.session.execute(query).first())

    def add(self, exam: Exam) -> None:
        """Insert an exam."""
        self.session.execute(insert(exams).values(**_values(exam)))

    def record_manifest(
        self,
        exam_id: str,
        entries: Sequence[ManifestEntry],
        digest: str,
        *,
        started_at: datetime | None,
        completed_at: datetime | None,
        scan_seconds: float,
    ) -> None:
        """Store an exam's manifest and scan timing."""
        self.session.execute(
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
        self._update(
            exam_id,
            manifest_sha256=digest,
            scan_started_at=started_at,
            scan_completed_at=completed_at,
            scan_seconds=scan_seconds,
        )

    def manifest(self, exam_id: str) -> list[ManifestEntry]:
        """Return an exam's manifest in acquisition order (empty before it arrives)."""
        rows = self.session.execute(
            select(manifest_items.c.sop_instance_uid, manifest_items.c.sha256)
            .where(manifest_items.c.exam_id == exam_id)
            .order_by(manifest_items.c.position)
        ).all()
        return [ManifestEntry(r.sop_instance_uid, r.sha256) for r in rows]

    def set_state(self, exam_id: str, state: str) -> None:
        """Move an exam to `state`."""
        self._update(exam_id, state=state)

    def bind_study(self, exam_id: str, study_uid: str) -> None:
        """Record the StudyInstanceUID the exam's first instance carried."""
        self._update(exam_id, study_instance_uid=study_uid)

    def complete(self, exam_id: str, at: datetime) -> bool:
        """Mark an exam completed unless it already is; True if this call did it."""
        return _changed(
            self.session.execute(
                update(exams)
                .where(exams.c.exam_id == exam_id, exams.c.state != "completed")
                .values(state="completed", completed_at=at)
            )
        )

    def idempotency(self, owner: str, key: str) -> IdempotencyRecord | None:
        """Return a recorded Idempotency-Key."""
        query = select(idempotency_keys).where(
            idempotency_keys.c.owner == owner, idempotency_keys.c.key == key
        )
        return _optional(IdempotencyRecord, self.session.execute(query).first())

    def remember(self, record: IdempotencyRecord) -> None:
        """Record an Idempotency-Key."""
        self.session.execute(insert(idempotency_keys).values(**_values(record)))

    def _update(self, exam_id: str, **values: Any) -> None:
        self.session.execute(update(exams).where(exams.c.exam_id == exam_id).values(**values))


def _criterion(criterion: Criterion) -> ColumnElement[bool]:
    column = instances.c[criterion.field]
    value = criterion.value
    if criterion.op == "in":
        return column.in_(list(value) if isinstance(value, tuple) else [value])
    if criterion.op == "ge":
        return column >= value
    if criterion.op == "le":
        return column <= value
    if criterion.op == "like":
        return column.like(str(value), escape="\\")
    return column == value


def _visible(reach: Reachable) -> ColumnElement[bool]:
    stored = instances.c.status == "stored"
    if reach.institutions is None:
        return stored
    if not reach.institutions:
        return and_(stored, false())
    clauses = [stored, instances.c.institution_id.in_(sorted(reach.institutions))]
    if reach.consortium:
        clauses.append(instances.c.consortium_id == reach.consortium)
    return and_(*clauses)


@dataclass
class SqlInstances:
    """The instance index in one session."""

    session: Session

    def get(self, sop_uid: str) -> Instance | None:
        """Return an instance (pending or stored)."""
        query = select(instances).where(instances.c.sop_instance_uid == sop_uid)
        return _optional(Instance, self.session.execute(query).first())

    def stored_of_exam(self, exam_id: str) -> list[Instance]:
        """Return the stored instances linked to an exam, in storage order."""
        query = (
            select(instances)
            .where(instances.c.exam_id == exam_id, instances.c.status == "stored")
            .order_by(instances.c.stored_at, instances.c.sop_instance_uid)
        )
        return [_record(Instance, r) for r in self.session.execute(query)]

    def claim(self, instance: Instance) -> None:
        """Insert a pending instance: the write claim on its SOP Instance UID."""
        self.session.execute(insert(instances).values(**_values(instance)))

    def mark_stored(self, sop_uid: str, at: datetime) -> None:
        """Turn a claim into a stored instance."""
        self._update(sop_uid, status="stored", stored_at=at)

    def link(self, sop_uid: str, exam_id: str, app_pixel_spacing: str | None) -> None:
        """Link an instance that arrived without an exam to one."""
        self._update(sop_uid, exam_id=exam_id, app_pixel_spacing=app_pixel_spacing)

    def release(self, sop_uid: str) -> None:
        """Drop a write claim (a stored instance is left alone)."""
        self.session.execute(
            delete(instances).where(
                instances.c.sop_instance_uid == sop_uid, instances.c.status == "pending"
            )
        )

    def claims_before(self, cut: datetime) -> list[Instance]:
        """Return write claims taken before the cut."""
        query = select(instances).where(
            instances.c.status == "pending", instances.c.claimed_at < cut
        )
        return [_record(Instance, r) for r in self.session.execute(query)]

    def owners_of_study(self, study_uid: str) -> set[Scope]:
        """Return the scopes of a study's indexed instances."""
        query = (
            select(instances.c.institution_id, instances.c.consortium_id)
            .where(instances.c.study_instance_uid == study_uid)
            .distinct()
        )
        return {Scope(r.institution_id, r.consortium_id) for r in self.session.execute(query)}

    def search(self, reach: Reachable, criteria: Sequence[Criterion]) -> list[Instance]:
        """Return stored instances within `reach` matching every criterion."""
        query = (
            select(instances)
            .where(_visible(reach), *(_criterion(c) for c in criteria))
            .order_by(*_SEARCH_ORDER)
        )
        return [_record(Instance, r) for r in self.session.execute(query)]

    def _update(self, sop_uid: str, **values: Any) -> None:
        self.session.execute(
            update(instances).where(instances.c.sop_instance_uid == sop_uid).values(**values)
        )


def _given(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


@dataclass
class SqlUploads:
    """tus upload sessions in one session."""

    session: Session

    def get(self, session_id: str) -> UploadSession | None:
        """Return an upload session."""
        query = select(upload_sessions).where(upload_sessions.c.session_id == session_id)
        return _optional(UploadSession, self.session.execute(query).first())

    def add(self, upload: UploadSession) -> None:
        """Insert an upload session."""
        self.session.execute(insert(upload_sessions).values(**_values(upload)))

    def lock(
        self, session_id: str, offset: int, generation: int, status: str, expires_at: datetime
    ) -> bool:
        """Take the append lock at `offset` (compare-and-set); False if another holds it."""
        return _changed(
            self.session.execute(
                update(upload_sessions)
                .where(
                    upload_sessions.c.session_id == session_id,
                    upload_sessions.c.upload_offset == offset,
                    upload_sessions.c.status == status,
                    upload_sessions.c.parts == generation,
                )
                .values(status="appending", parts=generation + 1, expires_at=expires_at)
            )
        )

    def release(
        self,
        session_id: str,
        generation: int,
        *,
        status: str,
        upload_offset: int | None = None,
        interrupted: bool | None = None,
        expires_at: datetime | None = None,
    ) -> bool:
        """Update a session still locked by `generation`; False if the lock was taken over."""
        values = _given(
            status=status,
            upload_offset=upload_offset,
            interrupted=interrupted,
            expires_at=expires_at,
        )
        return _changed(
            self.session.execute(
                update(upload_sessions)
                .where(
                    upload_sessions.c.session_id == session_id,
                    upload_sessions.c.status == "appending",
                    upload_sessions.c.parts == generation,
                )
                .values(**values)
            )
        )

    def update(
        self,
        session_id: str,
        *,
        status: str | None = None,
        upload_offset: int | None = None,
        interrupted: bool | None = None,
        sop_instance_uid: str | None = None,
    ) -> None:
        """Update the given fields of an upload session."""
        values = _given(
            status=status,
            upload_offset=upload_offset,
            interrupted=interrupted,
            sop_instance_uid=sop_instance_uid,
        )
        self.session.execute(
            update(upload_sessions)
            .where(upload_sessions.c.session_id == session_id)
            .values(**values)
        )

    def delete(self, session_id: str) -> None:
        """Delete an upload session."""
        self.session.execute(
            delete(upload_sessions).where(upload_sessions.c.session_id == session_id)
        )

    def locked(self, expiring_before: datetime) -> list[UploadSession]:
        """Return sessions locked by an append whose expiry (set when locked) is before the cut."""
        query = select(upload_sessions).where(
            upload_sessions.c.status == "appending",
            upload_sessions.c.expires_at < expiring_before,
        )
        return [_record(UploadSession, r) for r in self.session.execute(query)]

    def full_open(self) -> list[UploadSession]:
        """Return open sessions whose offset reached their length (left by older versions)."""
        query = select(upload_sessions).where(
            upload_sessions.c.status == "open",
            upload_sessions.c.upload_offset >= upload_sessions.c.upload_length,
        )
        return [_record(UploadSession, r) for r in self.session.execute(query)]

    def expired(self, now: datetime, limit: int = 100) -> list[str]:
        """Return ids of sessions past their expiry."""
        query = (
            select(upload_sessions.c.session_id)
            .where(upload_sessions.c.expires_at < now)
            .limit(limit)
        )
        return [r.session_id for r in self.session.execute(query)]


@dataclass
class SqlCallers:
    """The DIMSE caller registry in one session."""

    session: Session

    def get(self, ae_title: str) -> DimseCaller | None:
        """Return the registered caller with this (significant) AE title."""
        query = select(dimse_callers).where(dimse_callers.c.ae_title == ae_title)
        row = self.session.execute(query).first()
        return None if row is None else _caller(row)

    def all(self) -> list[DimseCaller]:
        """Return every registered caller, by AE title."""
        query = select(dimse_callers).order_by(dimse_callers.c.ae_title)
        return [_caller(row) for row in self.session.execute(query)]

    def put(self, caller: DimseCaller, *, by: str, at: datetime) -> bool:
        """Register or replace a caller; return True when it was new."""
        values = {
            "institution_id": caller.institution_id,
            "description": caller.description,
            "updated_by": by[:255],
            "updated_at": at,
        }
        if _changed(
            self.session.execute(
                update(dimse_callers)
                .where(dimse_callers.c.ae_title == caller.ae_title)
                .values(**values)
            )
        ):
            return False
        self.session.execute(insert(dimse_callers).values(ae_title=caller.ae_title, **values))
        return True

    def delete(self, ae_title: str) -> bool:
        """Remove a caller; return True when it was registered."""
        return _changed(
            self.session.execute(delete(dimse_callers).where(dimse_callers.c.ae_title == ae_title))
        )


def _caller(row: Row[Any]) -> DimseCaller:
    return DimseCaller(row.ae_title, row.institution_id, row.description)


@dataclass
class SqlAuditTrail:
    """Audit records in one session."""

    session: Session

    def record(
        self,
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
        self.session.execute(
            insert(audit_log).values(
                at=at,
                actor=actor.user,
                roles=",".join(sorted(actor.roles)),
                action=action,
                resource_type=resource_type,
                resource_id=resource_id[:255],
                institution_id=institution_id,
                channel=channel,
                # PostgreSQL refuses an over-long value (SQLite does not): a long rejection
                # reason must not turn the refusal into a 500.
                outcome=outcome[:AUDIT_OUTCOME_CHARS],
                detail=(detail or "")[:2000] or None,
            )
        )


class SqlWork:
    """One database transaction with ingest's repositories and its outbox."""

    def __init__(self, session: Session, outbox: Outbox) -> None:
        self.session = session
        self.outbox = outbox
        self.exams = SqlExams(session)
        self.instances = SqlInstances(session)
        self.uploads = SqlUploads(session)
        self.callers = SqlCallers(session)
        self.audit = SqlAuditTrail(session)

    def emit(self, event: Event) -> None:
        """Queue an event in the outbox, committed with everything else in this transaction."""
        message, key = messages.event_message(event)
        self.outbox.emit(self.session, message, source=SOURCE, key=key)


def unit_of_work(sessions: sessionmaker[Session], outbox: Outbox) -> UnitOfWork:
    """Return the factory of ingest's units of work over `sessions`."""

    @contextmanager
    def unit() -> Iterator[Work]:
        try:
            with sessions.begin() as session:
                yield SqlWork(session, outbox)
        except IntegrityError as exc:
            raise Collision(str(exc.orig)) from exc

    return unit
