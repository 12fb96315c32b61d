"""Who may see and act on reads, reports and alerts: role plus institution scoping."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sonobridge.common.auth import Principal
from sonobridge.reporting.domain.policy import Tier, WorklistSpec

SEE_ALL = ("admin", "service")
HOME_ROLES = ("physician", "operator", "coordinator", "expert")


@dataclass(frozen=True)
class ReadScope:
    """The reads a caller may see: every one, or those of one institution or on some worklists."""

    everything: bool = False
    institution: str | None = None
    worklists: frozenset[str] = frozenset()

    def admits(self, worklist: str, institution: str) -> bool:
        """True when a read on `worklist` for `institution` is in scope."""
        return (
            self.everything
            or (self.institution is not None and institution == self.institution)
            or worklist in self.worklists
        )


def read_scope(principal: Principal, worklists: Iterable[WorklistSpec]) -> ReadScope:
    """Return the scope of reads the caller may see, for queries to filter on."""
    if principal.has_role(*SEE_ALL):
        return ReadScope(everything=True)
    home = principal.institution if principal.has_role(*HOME_ROLES) else None
    # County and provincial experts read for every institution of the consortium.
    shared = (
        frozenset(s.name for s in worklists if s.tier is not Tier.TOWNSHIP)
        if principal.has_role("expert")
        else frozenset()
    )
    return ReadScope(institution=home, worklists=shared)


def may_view(principal: Principal, spec: WorklistSpec | None, institution: str) -> bool:
    """True when the caller may see a read (or its report) on `spec` for `institution`."""
    specs = [spec] if spec is not None else []
    return read_scope(principal, specs).admits(spec.name if spec else "", institution)


def may_read_on(principal: Principal, spec: WorklistSpec, institution: str) -> bool:
    """True when the caller may claim and sign reads of `spec` for `institution`."""
    if not principal.has_role(*spec.signer_roles):
        return False
    return not spec.institution_scoped or bool(principal.institution == institution)


def may_dispatch(principal: Principal) -> bool:
    """True for callers who may reassign reads and edit rosters."""
    return bool(principal.has_role("admin"))
