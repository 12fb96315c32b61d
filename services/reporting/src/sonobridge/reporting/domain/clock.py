"""Turnaround clock: what happens when a read's deadline passes, and when the next one falls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sonobridge.reporting.domain.policy import Policy, Priority


class TimerKind(StrEnum):
    """Durable timers the service keeps."""

    # The read's target on its current worklist passed: hand to the backup.
    TARGET = "target"
    # The backup's grace passed: move to the next tier.
    BACKUP = "backup"
    # An exam completed but no AI result arrived in time: route without AI.
    INFERENCE_WAIT = "inference_wait"


class EscalationAction(StrEnum):
    """What a fired deadline does to an open read."""

    TO_BACKUP = "to_backup"
    TO_NEXT_TIER = "to_next_tier"
    NONE = "none"


@dataclass(frozen=True)
class Escalation:
    """The effect of a fired deadline and the deadline that follows it, if any."""

    action: EscalationAction
    worklist: str
    next_timer: TimerKind | None
    next_fire_at: datetime | None
    new_due_at: datetime | None = None


def escalate(
    policy: Policy, *, worklist: str, priority: Priority, fired: TimerKind, at: datetime
) -> Escalation:
    """Decide the escalation for a deadline of kind `fired` that fell due at `at`."""
    if fired is TimerKind.TARGET:
        return Escalation(
            EscalationAction.TO_BACKUP,
            worklist,
            TimerKind.BACKUP,
            at + policy.backup_grace(priority),
        )
    if fired is TimerKind.BACKUP:
        spec = policy.worklist(worklist)
        if spec.next_tier is None:
            return Escalation(EscalationAction.NONE, worklist, None, None)
        due = at + policy.target(priority)
        return Escalation(EscalationAction.TO_NEXT_TIER, spec.next_tier, TimerKind.TARGET, due, due)
    raise ValueError(f"{fired.value} timers do not escalate reads")
