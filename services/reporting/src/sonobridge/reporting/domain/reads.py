"""A read's life: queue, claim, release, reassign, escalate, sign; and who may act on it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from sonobridge.common.problems import Conflict, Forbidden
from sonobridge.reporting.domain.policy import Priority, Route

OPEN_STATES = frozenset({"queued", "claimed", "escalated"})


class ReadState(StrEnum):
    """Where a read is in its life."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    SIGNED = "signed"
    RESCAN_REQUESTED = "rescan_requested"
    ESCALATED = "escalated"
    CANCELLED = "cancelled"


class ReadKind(StrEnum):
    """A primary read per exam, plus an audit read for sampled self-confirmed exams."""

    PRIMARY = "primary"
    AUDIT = "audit"


@dataclass(frozen=True)
class Read:
    """The parts of a read its state machine needs."""

    read_id: str
    study_uid: str
    institution: str
    route: Route
    worklist: str
    priority: Priority
    state: ReadState
    assigned_to: str | None
    due_at: datetime | None
    escalation_level: int = 0

    @property
    def is_open(self) -> bool:
        """True while the read still needs a signature."""
        return self.state.value in OPEN_STATES


def claim(read: Read, user: str) -> Read:
    """Take the read; only an open read that nobody else has claimed."""
    if not read.is_open:
        raise Conflict(f"read {read.read_id} is {read.state.value}; it cannot be claimed")
    if read.state is ReadState.CLAIMED:
        if read.assigned_to == user:
            return read
        raise Conflict(f"read {read.read_id} is claimed by another reader")
    return replace(read, state=ReadState.CLAIMED, assigned_to=user)


def release(read: Read, user: str, *, may_override: bool = False) -> Read:
    """Put a claimed read back on its worklist, unassigned."""
    if read.state is not ReadState.CLAIMED:
        raise Conflict(f"read {read.read_id} is {read.state.value}, not claimed")
    if read.assigned_to != user and not may_override:
        raise Forbidden("only the reader who claimed it may release this read")
    return replace(read, state=_waiting_state(read), assigned_to=None)


def reassign(read: Read, to_user: str) -> Read:
    """Give the read to another reader; it waits for them to claim it."""
    if not read.is_open:
        raise Conflict(f"read {read.read_id} is {read.state.value}; it cannot be reassigned")
    return replace(read, state=_waiting_state(read), assigned_to=to_user)


def ready_to_sign(read: Read, user: str) -> None:
    """Raise unless `user` holds the claim on this open read."""
    if read.state is ReadState.SIGNED:
        raise Conflict(f"read {read.read_id} is already signed; amend its report instead")
    if read.state is not ReadState.CLAIMED:
        raise Conflict(f"read {read.read_id} is {read.state.value}; claim it before signing")
    if read.assigned_to != user:
        raise Forbidden("only the reader who claimed this read may sign it")


def _waiting_state(read: Read) -> ReadState:
    return ReadState.ESCALATED if read.route is Route.PROVINCIAL else ReadState.QUEUED
