"""Preventive maintenance: calibration and inspection intervals per probe model."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class PreventiveSchedule:
    """Task `kind` is due every `every` for devices of `model`."""

    model: str
    kind: str
    every: timedelta

    def next_due(self, last_done: datetime) -> datetime:
        """Return when the task is next due after it was last done (or the device registered)."""
        return last_done + self.every

    def symptom(self) -> str:
        """Return the ticket symptom for this task."""
        days = self.every.total_seconds() / 86400
        return f"preventive {self.kind} due (every {days:g} days for {self.model})"


def schedules_for(schedules: list[PreventiveSchedule], model: str) -> list[PreventiveSchedule]:
    """Return the schedules that apply to `model`."""
    return [s for s in schedules if s.model == model]


@dataclass(frozen=True)
class PreventiveTask:
    """A scheduled task of one device, and the ticket that carries it out while one is open."""

    device_serial: str
    kind: str
    next_due_at: datetime
    last_done_at: datetime | None = None
    open_ticket_id: str | None = None
