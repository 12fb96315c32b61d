"""Duty rosters and the audit trail (admins)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sonobridge.common.audit import AuditRecord
from sonobridge.common.auth import Principal
from sonobridge.common.problems import Forbidden, InvalidInput, NotFound
from sonobridge.reporting.domain.access import may_dispatch
from sonobridge.reporting.domain.assignment import DutyRole, Shift
from sonobridge.reporting.handlers.scope import audit, spec_of
from sonobridge.reporting.ports import Dependencies


def set_roster(
    deps: Dependencies, principal: Principal, worklist: str, shifts: Sequence[dict[str, Any]]
) -> list[Shift]:
    """Replace a worklist's duty roster (admins)."""
    if not may_dispatch(principal):
        raise Forbidden("only an admin may change rosters")
    if spec_of(deps, worklist) is None:
        raise NotFound(f"no worklist {worklist}")
    parsed = []
    for s in shifts:
        if s["ends_at"] <= s["starts_at"]:
            raise InvalidInput(f"shift of {s['user']} ends before it starts")
        parsed.append(
            Shift(
                user=s["user"],
                worklist=worklist,
                role=DutyRole(s["role"]),
                starts_at=s["starts_at"],
                ends_at=s["ends_at"],
                institution=s.get("institution"),
            )
        )
    with deps.unit() as work:
        repo = work.reporting
        repo.replace_shifts(worklist, parsed)
        audit(repo, deps, principal, "roster_set", detail=f"{worklist}: {len(parsed)} shifts")
    return get_roster(deps, principal, worklist)


def get_roster(deps: Dependencies, principal: Principal, worklist: str) -> list[Shift]:
    """Return a worklist's duty roster."""
    if not principal.has_role("admin", "expert", "physician", "coordinator"):
        raise Forbidden("rosters are for readers and admins")
    if spec_of(deps, worklist) is None:
        raise NotFound(f"no worklist {worklist}")
    with deps.unit() as work:
        return work.reporting.shifts(worklist)


def audit_trail(
    deps: Dependencies, principal: Principal, *, read_id: str | None, report_id: str | None
) -> list[AuditRecord]:
    """Return who viewed and changed a read or report (admins)."""
    if not principal.has_role("admin"):
        raise Forbidden("only an admin may read the audit trail")
    if not read_id and not report_id:
        raise InvalidInput("give read_id or report_id")
    with deps.unit() as work:
        return work.reporting.audit_trail(read_id=read_id, report_id=report_id)
