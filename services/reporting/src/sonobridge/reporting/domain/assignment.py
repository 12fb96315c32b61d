"""Duty rosters and least-loaded assignment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class DutyRole(StrEnum):
    """A reader's role on a worklist's roster."""

    PRIMARY = "primary"
    BACKUP = "backup"


@dataclass(frozen=True)
class Shift:
    """One reader on duty for one worklist in [starts_at, ends_at)."""

    user: str
    worklist: str
    role: DutyRole
    starts_at: datetime
    ends_at: datetime
    institution: str | None = None

    def covers(self, at: datetime) -> bool:
        """True when `at` falls within the shift."""
        return self.starts_at <= at < self.ends_at


def on_duty(
    shifts: Iterable[Shift],
    worklist: str,
    role: DutyRole,
    at: datetime,
    *,
    institution: str | None = None,
) -> list[str]:
    """Return the readers on duty for `worklist` in `role` at `at` (sorted, unique)."""
    return sorted(
        {
            s.user
            for s in shifts
            if s.worklist == worklist
            and s.role is role
            and s.covers(at)
            and (institution is None or s.institution == institution)
        }
    )


def least_loaded(
    candidates: Iterable[str], load: Mapping[str, int], *, exclude: Iterable[str] = ()
) -> str | None:
    """Pick the candidate with the fewest open reads; ties go to the first name (repeatable)."""
    skipped = set(exclude)
    pool = [c for c in candidates if c not in skipped]
    if not pool:
        return None
    return min(pool, key=lambda user: (load.get(user, 0), user))
