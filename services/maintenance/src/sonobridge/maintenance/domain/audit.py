"""The audit trail: who changed what, kept for administrators."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class AuditRecord:
    """One audited change."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: str = ""
