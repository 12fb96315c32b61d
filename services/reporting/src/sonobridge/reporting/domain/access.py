"""Who may see and act on reads, reports and alerts: role plus institution scoping."""

from __future__ import annotations

from sonobridge.common.auth import Principal
from sonobridge.reporting.domain.policy import Tier, WorklistSpec

SEE_ALL = ("admin", "service")


def may_view(principal: Principal, spec: WorklistSpec | None, institution: str) -> bool:
    """True when the caller may see a read (or its report) on `spec` for `institution`."""
    if principal.has_role(*SEE_ALL):
        return True
    if principal.institution == institution and principal.has_role(
        "physician", "operator", "coordinator", "expert"
    ):
        return True
    # County and provincial experts read for every institution of the consortium.
    return principal.has_role("expert") and spec is not None and spec.tier is not Tier.TOWNSHIP


def may_read_on(principal: Principal, spec: WorklistSpec, institution: str) -> bool:
    """True when the caller may claim and sign reads of `spec` for `institution`."""
    if not principal.has_role(*spec.signer_roles):
        return False
    return not spec.institution_scoped or bool(principal.institution == institution)


def may_dispatch(principal: Principal) -> bool:
    """True for callers who may reassign reads and edit rosters."""
    return bool(principal.has_role("admin"))
