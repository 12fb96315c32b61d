"""The audit record every service writes: who did what to which resource, when, and how it went."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Column, Integer, MetaData, Row, String, Table, Text, insert, or_, select
from sqlalchemy.orm import Session

from sonobridge.common.db import UtcDateTime

# Outcomes are short codes (ok, denied, rejected:<reason>); longer ones are clipped on insert:
# PostgreSQL refuses an over-long value (SQLite does not), which would turn a refusal into a 500.
OUTCOME_CHARS = 32
DETAIL_CHARS = 2000
ID_CHARS = 255


@dataclass(frozen=True)
class AuditRecord:
    """One audited action; identifiers and codes only, never patient-identifying data."""

    at: datetime
    actor: str
    action: str
    resource_type: str = ""
    resource_id: str = ""
    roles: frozenset[str] = field(default_factory=frozenset)
    institution_id: str | None = None
    # A second resource the action touched, such as the report of a read, so either finds it.
    related_id: str | None = None
    outcome: str = "ok"
    channel: str | None = None
    request_id: str | None = None
    detail: str = ""
    id: int | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("an audit record's time must be timezone-aware")


class AuditLog(Protocol):
    """Where audit records are appended, in the transaction of the action they record."""

    def append(self, record: AuditRecord) -> None:
        """Append one record."""
        ...


class AuditTrail(Protocol):
    """Reads the audit records back, oldest first."""

    def trail(
        self,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """Return records after id `after`, about one resource when named (or related to it)."""
        ...


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


class SqlAuditLog:
    """The audit table made by `audit_table`, used inside the caller's session."""

    def __init__(self, session: Session, table: Table) -> None:
        self.session = session
        self.table = table

    def append(self, record: AuditRecord) -> None:
        """Append one record, clipping the free-text fields to their columns."""
        self.session.execute(
            insert(self.table).values(
                at=record.at,
                actor=record.actor[:ID_CHARS],
                roles=",".join(sorted(record.roles)),
                institution_id=record.institution_id,
                action=record.action,
                resource_type=record.resource_type,
                resource_id=record.resource_id[:ID_CHARS],
                related_id=record.related_id[:ID_CHARS] if record.related_id else None,
                outcome=record.outcome[:OUTCOME_CHARS],
                channel=record.channel,
                request_id=record.request_id,
                detail=record.detail[:DETAIL_CHARS] or None,
            )
        )

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
    return AuditRecord(
        id=values["id"],
        at=values["at"],
        actor=values["actor"],
        roles=frozenset(roles),
        institution_id=values["institution_id"],
        action=values["action"],
        resource_type=values["resource_type"],
        resource_id=values["resource_id"],
        related_id=values["related_id"],
        outcome=values["outcome"],
        channel=values["channel"],
        request_id=values["request_id"],
        detail=values["detail"] or "",
    )
