"""SQLAlchemy tables and adapters of the shared records: idempotency keys, audit log, histories."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Column,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sonobridge.common.audit import DETAIL_CHARS, ID_CHARS, OUTCOME_CHARS, AuditRecord
from sonobridge.common.db import UtcDateTime
from sonobridge.common.idempotency import MAX_KEY_CHARS, Body, KeyTaken, StoredAnswer
from sonobridge.common.record_rows import record_from_row, row_values


def idempotency_table(metadata: MetaData, name: str = "idempotency_keys") -> Table:
    """Declare the keys table on a service's metadata (the schema reporting's 0002 created)."""
    return Table(
        name,
        metadata,
        Column("user", String(128), primary_key=True),
        Column("key", String(MAX_KEY_CHARS), primary_key=True),
        Column("request", String(512), nullable=False),
        Column("status", Integer, nullable=False),
        Column("body", JSON, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
    )


class SqlIdempotencyKeys:
    """Idempotency keys in a table made by `idempotency_table`, inside the caller's session."""

    def __init__(self, session: Session, table: Table) -> None:
        self.session = session
        self.table = table

    def find(self, owner: str, key: str) -> StoredAnswer | None:
        """Return the answer remembered for an owner's key, if any."""
        t = self.table
        row = self.session.execute(
            select(t.c.request, t.c.status, t.c.body).where(t.c.user == owner, t.c.key == key)
        ).first()
        if row is None:
            return None
        return StoredAnswer(row.request, int(row.status), cast(Body, row.body))

    def reserve(self, owner: str, key: str, request: str, at: datetime) -> None:
        """Insert the key before the change it guards; KeyTaken when the primary key is held."""
        try:
            self.session.execute(
                insert(self.table).values(
                    user=owner, key=key, request=request, status=0, body={}, created_at=at
                )
            )
        except IntegrityError as exc:
            raise KeyTaken(key) from exc

    def remember(self, owner: str, key: str, status: int, body: Body) -> None:
        """Store the answer on a reserved key, in the transaction of the change it answers."""
        t = self.table
        self.session.execute(
            update(t).where(t.c.user == owner, t.c.key == key).values(status=status, body=body)
        )


def audit_table(metadata: MetaData, name: str = "audit_log") -> Table:
    """Declare the audit table on a service's metadata."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("at", UtcDateTime, nullable=False, index=True),
        Column("actor", String(ID_CHARS), nullable=False, index=True),
        Column("roles", String(255), nullable=False, default=""),
        Column("institution_id", String(128), nullable=True),
        Column("action", String(64), nullable=False),
        Column("resource_type", String(32), nullable=False, default=""),
        Column("resource_id", String(ID_CHARS), nullable=False, default="", index=True),
        Column("related_id", String(ID_CHARS), nullable=True, index=True),
        Column("outcome", String(OUTCOME_CHARS), nullable=False, default="ok"),
        Column("channel", String(16), nullable=True),
        Column("request_id", String(64), nullable=True),
        Column("detail", Text, nullable=True),
    )


def history_table(
    metadata: MetaData, name: str, subject: str, subject_chars: int, *details: Column[Any]
) -> Table:
    """Declare the append-only history of one kind of subject: who made which change, and when."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column(subject, String(subject_chars), nullable=False, index=True),
        Column("at", UtcDateTime, nullable=False),
        Column("actor", String(128), nullable=False),
        Column("kind", String(32), nullable=False),
        *details,
    )


def audit_row(record: AuditRecord) -> dict[str, Any]:
    """Return a record's row in an `audit_table`, its free-text fields clipped to their columns."""
    return row_values(
        record,
        exclude=("id",),
        actor=record.actor[:ID_CHARS],
        roles=",".join(sorted(record.roles)),
        resource_id=record.resource_id[:ID_CHARS],
        related_id=record.related_id[:ID_CHARS] if record.related_id else None,
        outcome=record.outcome[:OUTCOME_CHARS],
        detail=record.detail[:DETAIL_CHARS] or None,
    )


class SqlAuditLog:
    """The audit table made by `audit_table`, used inside the caller's session."""

    def __init__(self, session: Session, table: Table) -> None:
        self.session = session
        self.table = table

    def append(self, record: AuditRecord) -> None:
        """Append one record, clipping the free-text fields to their columns."""
        self.session.execute(insert(self.table).values(audit_row(record)))

    def trail(
        self,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """Return records after id `after`, about one resource when named (or related to it)."""
        t = self.table
        query = select(t).where(t.c.id > after).order_by(t.c.id)
        if resource_id is not None:
            about = t.c.resource_id == resource_id
            if resource_type is not None:
                about = about & (t.c.resource_type == resource_type)
            query = query.where(or_(about, t.c.related_id == resource_id))
        elif resource_type is not None:
            query = query.where(t.c.resource_type == resource_type)
        if limit is not None:
            query = query.limit(limit)
        return [_record(row) for row in self.session.execute(query)]


def _record(row: Row[Any]) -> AuditRecord:
    values = row._mapping
    roles: Iterable[str] = (r for r in (values["roles"] or "").split(",") if r)
    return record_from_row(AuditRecord, row, roles=frozenset(roles), detail=values["detail"] or "")
