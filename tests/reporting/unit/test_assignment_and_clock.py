"""Rosters, least-loaded assignment, the read state machine and escalation deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sonobridge.common.problems import Conflict, Forbidden
from sonobridge.reporting.adapters.policy_file import read_policy
from sonobridge.reporting.domain import reads
from sonobridge.reporting.domain.assignment import DutyRole, Shift, least_loaded, on_duty
from sonobridge.reporting.domain.clock import EscalationAction, TimerKind, escalate
from sonobridge.reporting.domain.policy import Priority, Route
from sonobridge.reporting.domain.reads import Read, ReadState

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _shift(user: str, role: DutyRole, start_h: float, end_h: float) -> Shift:
    return Shift(
        user, "county-thyroid", role, T0 + timedelta(hours=start_h), T0 + timedelta(hours=end_h)
    )


def test_only_readers_on_duty_for_the_worklist_and_role_are_candidates():
    shifts = [
        _shift("a", DutyRole.PRIMARY, 0, 12),
        _shift("b", DutyRole.PRIMARY, 12, 24),
        _shift("c", DutyRole.BACKUP, 0, 24),
    ]
    assert on_duty(shifts, "county-thyroid", DutyRole.PRIMARY, T0) == ["a"]
    # Shifts are half-open: the hand-over instant belongs to the next shift.
    assert on_duty(shifts, "county-thyroid", DutyRole.PRIMARY, T0 + timedelta(hours=12)) == ["b"]
    assert on_duty(shifts, "county-thyroid", DutyRole.BACKUP, T0) == ["c"]
    assert on_duty(shifts, "county-vascular", DutyRole.PRIMARY, T0) == []


def test_the_least_loaded_reader_gets_the_read_and_ties_are_repeatable():
    assert least_loaded(["a", "b", "c"], {"a": 3, "b": 1, "c": 1}) == "b"
    assert least_loaded(["a", "b"], {}) == "a"
    assert least_loaded(["a", "b"], {"b": 0, "a": 2}, exclude=["b"]) == "a"
    assert least_loaded([], {}) is None


def _read(state: ReadState = ReadState.QUEUED, assigned: str | None = "a") -> Read:
    return Read(
        "r1",
        "1.2",
        "township-a",
        Route.EXPERT,
        "county-thyroid",
        Priority.ROUTINE,
        state,
        assigned,
        T0,
    )


def test_claim_release_and_reassign_follow_the_state_machine():
    claimed = reads.claim(_read(), "b")
    assert (claimed.state, claimed.assigned_to) == (ReadState.CLAIMED, "b")
    assert reads.claim(claimed, "b") == claimed
    with pytest.raises(Conflict):
        reads.claim(claimed, "a")
    with pytest.raises(Forbidden):
        reads.release(claimed, "a")
    released = reads.release(claimed, "b")
    assert (released.state, released.assigned_to) == (ReadState.QUEUED, None)
    reassigned = reads.reassign(claimed, "c")
    assert (reassigned.state, reassigned.assigned_to) == (ReadState.QUEUED, "c")
    with pytest.raises(Conflict):
        reads.claim(_read(ReadState.SIGNED), "a")
    with pytest.raises(Conflict, match="claim it before signing"):
        reads.ready_to_sign(_read(), "a")
    with pytest.raises(Forbidden):
        reads.ready_to_sign(claimed, "a")


def test_a_missed_target_goes_to_the_backup_then_the_next_tier_then_stops():
    policy = read_policy()
    due = T0 + policy.target(Priority.PRIORITY)
    first = escalate(
        policy,
        worklist="county-thyroid",
        priority=Priority.PRIORITY,
        fired=TimerKind.TARGET,
        at=due,
    )
    assert first.action is EscalationAction.TO_BACKUP
    assert first.next_timer is TimerKind.BACKUP
    assert first.next_fire_at == due + timedelta(minutes=15)
    second = escalate(
        policy,
        worklist="county-thyroid",
        priority=Priority.PRIORITY,
        fired=TimerKind.BACKUP,
        at=first.next_fire_at,
    )
    assert (second.action, second.worklist) == (EscalationAction.TO_NEXT_TIER, "provincial")
    assert second.new_due_at == first.next_fire_at + timedelta(minutes=30)
    assert second.next_timer is TimerKind.TARGET
    last = escalate(
        policy,
        worklist="provincial",
        priority=Priority.PRIORITY,
        fired=TimerKind.BACKUP,
        at=second.new_due_at,
    )
    assert last.action is EscalationAction.NONE and last.next_timer is None


def test_a_whole_shift_of_deadlines_runs_on_a_fake_clock():
    policy = read_policy()
    # Walk an urgent read through every deadline with nothing but arithmetic on the clock.
    at, worklist, kind, steps = T0, "county-urgent", TimerKind.TARGET, []
    at = at + policy.target(Priority.URGENT)
    while kind is not None:
        step = escalate(policy, worklist=worklist, priority=Priority.URGENT, fired=kind, at=at)
        steps.append((step.action.value, worklist, at - T0))
        worklist, kind, at = step.worklist, step.next_timer, step.next_fire_at
    assert steps == [
        ("to_backup", "county-urgent", timedelta(minutes=15)),
        ("to_next_tier", "county-urgent", timedelta(minutes=25)),
        ("to_backup", "provincial", timedelta(minutes=40)),
        ("none", "provincial", timedelta(minutes=50)),
    ]
