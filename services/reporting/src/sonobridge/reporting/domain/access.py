"""Who may see and act on reads and reports: the common access policy plus worklist tiers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sonobridge.common.access import AccessPolicy
from sonobridge.common.auth import Principal
from sonobridge.reporting.domain.policy import Tier, WorklistSpec

# Experts see the reads of the institutions they reach only on shared (county, provincial)
# worklists and their own institution's; other readers see every read of what they reach.
WORKLIST_FILTERED = ("expert",)
UNFILTERED = ("operator", "physician", "coordinator", "admin", "service")


@dataclass(frozen=True)
class ReadScope:
    """The reads a caller may see: institution reach from the common policy, maybe by worklist."""

    everything: bool = False
    institutions: frozenset[str] = frozenset()
    # None: no worklist filter; otherwise only reads of `home` or on these worklists.
    worklists: frozenset[str] | None = None
    home: str | None = None

    def admits(self, worklist: str, institution: str) -> bool:
        """True when a read on `worklist` for `institution` is in scope."""
        if self.everything:
            return True
        if institution not in self.institutions:
            return False
        return self.worklists is None or institution == self.home or worklist in self.worklists


def read_scope(
    principal: Principal, worklists: Iterable[WorklistSpec], access: AccessPolicy
) -> ReadScope:
    """Return the scope of reads the caller may see, for queries to filter on."""
    reach = access.readable_institutions(principal)
    if reach is None:
        return ReadScope(everything=True)
    if not reach:
        return ReadScope()
    if principal.has_role(*WORKLIST_FILTERED) and not principal.has_role(*UNFILTERED):
        shared = frozenset(s.name for s in worklists if s.tier is not Tier.TOWNSHIP)
        return ReadScope(institutions=reach, worklists=shared, home=principal.institution)
    return ReadScope(institutions=reach)


def may_view(
    principal: Principal, spec: WorklistSpec | None, institution: str, access: AccessPolicy
) -> bool:
    """True when the caller may see a read (or its report) on `spec` for `institution`."""
    specs = [spec] if spec is not None else []
    return read_scope(principal, specs, access).admits(spec.name if spec else "", institution)


def may_read_on(principal: Principal, spec: WorklistSpec, institution: str) -> bool:
    """True when the caller may claim and sign reads of `spec` for `institution`."""
    if not principal.has_role(*spec.signer_roles):
        return False
    return not spec.institution_scoped or bool(principal.institution == institution)


def may_dispatch(principal: Principal) -> bool:
    """True for callers who may reassign reads and edit rosters."""
    return bool(principal.has_role("admin"))


# The reading station's worklist and exam pages; operators work in the township app instead.
STATION_ROLES = ("expert", "physician", "coordinator")


def may_use_station(principal: Principal) -> bool:
    """True for callers who may open the reading station's worklist and exams."""
    return bool(principal.has_role(*STATION_ROLES))
