"""Which engineer gets a new ticket: the least loaded engineer of the centre's region."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    """Engineers cover the institutions of a region; breaches escalate to its contact."""

    name: str
    institutions: frozenset[str]
    engineers: tuple[str, ...]
    escalation_contact: str = ""


def region_of(regions: Sequence[Region], institution: str) -> Region | None:
    """Return the region that covers `institution`, if any."""
    for region in regions:
        if institution in region.institutions:
            return region
    return None


def choose_engineer(region: Region | None, open_load: Mapping[str, int]) -> str:
    """Return the region's engineer with fewest open tickets (ties by name), or '' if none."""
    if region is None or not region.engineers:
        return ""
    return min(region.engineers, key=lambda e: (open_load.get(e, 0), e))
