"""The audit trail: who changed what, kept for administrators, as common audit records."""

from __future__ import annotations

from datetime import datetime

from sonobridge.common.audit import AuditRecord

# An action's family names the kind of resource it targets: `ticket.open` targets a ticket.
RESOURCE_TYPES = ("ticket", "device", "loaner", "telemetry")


def resource_type(action: str) -> str:
    """Return the kind of resource an action targets, from its family ('' when unknown)."""
    family = action.partition(".")[0]
    return family if family in RESOURCE_TYPES else ""


def change(*, at: datetime, actor: str, action: str, target: str, detail: str = "") -> AuditRecord:
    """Describe one audited change to `target` (a ticket id or device serial)."""
    return AuditRecord(
        at=at,
        actor=actor,
        action=action,
        resource_type=resource_type(action),
        resource_id=target,
        detail=detail,
    )


__all__ = ["AuditRecord", "change", "resource_type"]
