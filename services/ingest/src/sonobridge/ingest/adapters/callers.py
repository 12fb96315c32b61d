"""SQLAlchemy repositories of the DIMSE caller registry and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.orm import Session

from sonobridge.common.auth import Principal
from sonobridge.ingest.adapters.orm import AUDIT_OUTCOME_CHARS, audit_log, dimse_callers
from sonobridge.ingest.adapters.rows import changed
from sonobridge.ingest.domain.callers import DimseCaller


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
        if changed(
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
        return changed(
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
