"""What several use-case families share: who may see a read, who reads next, the audit trail."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sonobridge.common.audit import audit_record
from sonobridge.common.auth import Principal
from sonobridge.common.problems import Forbidden, NotFound
from sonobridge.reporting.domain.access import may_read_on, may_view
from sonobridge.reporting.domain.assignment import DutyRole, least_loaded, on_duty
from sonobridge.reporting.domain.policy import WorklistSpec
from sonobridge.reporting.domain.records import ReadRecord
from sonobridge.reporting.ports import Dependencies, Reporting

SYSTEM = "system:reporting"


def spec_of(deps: Dependencies, name: str) -> WorklistSpec | None:
    """Return the worklist named `name`, or None when the policy has none."""
    try:
        return deps.policy.worklist(name)
    except KeyError:
        return None


def visible_read(
    repo: Reporting, deps: Dependencies, principal: Principal, read_id: str, *, lock: bool = False
) -> ReadRecord:
    """Return a read the caller may see; NotFound otherwise (a hidden read does not exist)."""
    read = repo.read(read_id, lock=lock)
    if read is None or not may_view(
        principal, spec_of(deps, read.worklist), read.institution, deps.access
    ):
        raise NotFound(f"no read {read_id}")
    return read


def require_reader(principal: Principal, deps: Dependencies, read: ReadRecord) -> None:
    """Raise Forbidden unless the caller may report on the read's worklist."""
    spec = deps.policy.worklist(read.worklist)
    if not may_read_on(principal, spec, read.institution):
        raise Forbidden(
            f"reports on {spec.name} need one of the roles "
            f"{', '.join(spec.signer_roles) or '(none)'}"
        )


def audit(
    repo: Reporting,
    deps: Dependencies,
    principal: Principal,
    action: str,
    *,
    read_id: str | None = None,
    report_id: str | None = None,
    detail: str = "",
) -> None:
    """Record who did what to which read or report, in the caller's transaction."""
    # The read is the subject when there is one; its report is then the related resource.
    if read_id:
        kind, subject, related = "read", read_id, report_id
    elif report_id:
        kind, subject, related = "report", report_id, None
    else:
        kind, subject, related = "", "", None
    repo.audit(
        audit_record(
            at=deps.clock(),
            actor=principal,
            action=action,
            institution_id=principal.institution,
            resource_type=kind,
            resource_id=subject,
            related_id=related,
            detail=detail,
        )
    )


def pick_reader(
    repo: Reporting,
    spec: WorklistSpec,
    role: DutyRole,
    at: datetime,
    institution: str,
    exclude: Iterable[str] = (),
) -> str | None:
    """Return the least loaded reader on duty for the worklist, if anyone is."""
    shifts = repo.shifts(spec.name)
    scope = institution if spec.institution_scoped else None
    candidates = on_duty(shifts, spec.name, role, at, institution=scope)
    return least_loaded(candidates, repo.open_load(), exclude=exclude)
