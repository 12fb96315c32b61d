"""SLA clocks: elapsed time and deadlines with pauses excluded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

ZERO = timedelta(0)


@dataclass(frozen=True)
class Pause:
    """One interval during which the SLA clocks stand still (e.g. waiting for parts)."""

    started_at: datetime
    ended_at: datetime | None
    reason: str

    def overlap(self, start: datetime, end: datetime) -> timedelta:
        """Return how much of [start, end) this pause covers."""
        stop = end if self.ended_at is None else min(end, self.ended_at)
        begin = max(start, self.started_at)
        return max(ZERO, stop - begin)


def paused_within(pauses: Sequence[Pause], start: datetime, end: datetime) -> timedelta:
    """Return the total paused time between `start` and `end`."""
    if end <= start:
        return ZERO
    return sum((p.overlap(start, end) for p in pauses), ZERO)


@dataclass(frozen=True)
class SlaClock:
    """A deadline measured from `started_at`, stopped at `stopped_at`, net of pauses."""

    name: str
    started_at: datetime
    target: timedelta
    stopped_at: datetime | None

    def end(self, now: datetime) -> datetime:
        """Return the instant the clock is read at: its stop, or now while it runs."""
        return self.stopped_at if self.stopped_at is not None else now

    def elapsed(self, pauses: Sequence[Pause], now: datetime) -> timedelta:
        """Return running time so far (or at the stop), pauses excluded."""
        end = self.end(now)
        return max(ZERO, end - self.started_at - paused_within(pauses, self.started_at, end))

    def due_at(self, pauses: Sequence[Pause], now: datetime) -> datetime:
        """Return the deadline: start + target + every pause that fell inside the clock's run."""
        return self.started_at + self.target + paused_within(pauses, self.started_at, self.end(now))

    def breached(self, pauses: Sequence[Pause], now: datetime) -> bool:
        """Return True when the clock ran (or runs) longer than its target."""
        return self.elapsed(pauses, now) > self.target

    def remaining(self, pauses: Sequence[Pause], now: datetime) -> timedelta:
        """Return target minus elapsed (negative once breached)."""
        return self.target - self.elapsed(pauses, now)


@dataclass(frozen=True)
class DueTimer:
    """A breach timer whose deadline has passed and that nobody has fired yet."""

    id: int
    ticket_id: str
