"""SQLAlchemy repositories of the DIMSE caller registry and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, delete, insert, select, update
from sqlalchemy.orm import Session

from sonobridge.common.audit import AuditRecord
from sonobridge.common.sql_records import audit_row
from sonobridge.ingest.adapters.orm import audit_log, dimse_callers
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
class SqlAuditLog:
    """Ingest's audit table in one session, its rows held for the unit of work's flush."""

    session: Session
    # Where rows wait for the unit of work's flush; None runs each insert at once.
    pending: list[tuple[Table, dict[str, Any]]] | None = None

    def append(self, record: AuditRecord) -> None:
        """Append one record, clipping the free-text fields to their columns."""
        row = audit_row(record)
        if self.pending is None:
            self.session.execute(insert(audit_log), row)
        else:
            self.pending.append((audit_log, row))
