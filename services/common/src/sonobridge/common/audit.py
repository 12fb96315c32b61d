"""The audit record every service writes: who did what to which resource, when, and how it went."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sonobridge.common.auth import Principal

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


def audit_record(
    *,
    at: datetime,
    actor: Principal,
    action: str,
    institution_id: str | None,
    resource_type: str = "",
    resource_id: str = "",
    related_id: str | None = None,
    outcome: str = "ok",
    channel: str | None = None,
    detail: str = "",
) -> AuditRecord:
    """Return the record of an action a caller took on a resource of `institution_id`."""
    # The institution is the resource's, which is not always the caller's home institution.
    return AuditRecord(
        at=at,
        actor=actor.user,
        roles=frozenset(actor.roles),
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        institution_id=institution_id,
        related_id=related_id,
        outcome=outcome,
        channel=channel,
        detail=detail,
    )


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
