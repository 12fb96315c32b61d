"""The clock: fire due timers (route without AI, breach, escalate) and gauge worklist depth."""

from __future__ import annotations

from sonobridge.common.problems import Conflict
from sonobridge.reporting.domain.assignment import DutyRole
from sonobridge.reporting.domain.clock import EscalationAction, TimerKind, escalate
from sonobridge.reporting.domain.policy import Priority, Route, Tier
from sonobridge.reporting.domain.reads import OPEN_STATES, ReadState
from sonobridge.reporting.domain.records import HistoryEntry, Timer
from sonobridge.reporting.handlers.routing import announce_routing, route_without_ai
from sonobridge.reporting.handlers.scope import SYSTEM, pick_reader
from sonobridge.reporting.ports import Dependencies, Work


def fire_due_timers(deps: Dependencies, limit: int = 200) -> int:
    """Fire every timer due now, each in its own transaction that also marks it fired."""
    fired = 0
    while True:
        now = deps.clock()
        with deps.unit() as work:
            ids = work.reporting.due_timer_ids(now, limit)
        if not ids:
            return fired
        for timer_id in ids:
            with deps.unit() as work:
                timer = work.reporting.claim_timer(timer_id)
                if timer is None:
                    continue
                apply_timer(work, deps, timer)
                if not work.reporting.mark_fired(timer_id, now):
                    raise Conflict(f"timer {timer_id} fired elsewhere; rolling back")
                fired += 1


def apply_timer(work: Work, deps: Dependencies, timer: Timer) -> None:
    """Do what a fired timer asks: route without AI, record a breach, escalate."""
    kind = TimerKind(timer.kind)
    at = timer.fire_at
    if kind is TimerKind.INFERENCE_WAIT:
        route_without_ai(work, deps, timer.subject, at)
        return
    repo = work.reporting
    read = repo.read(timer.subject, lock=True)
    if read is None or read.state not in OPEN_STATES:
        return
    policy = deps.policy
    priority = Priority(read.priority)
    if kind is TimerKind.TARGET and read.escalation_level == 0:
        repo.add_history(
            read.read_id,
            HistoryEntry(
                at=at,
                kind="sla_breached",
                actor=SYSTEM,
                worklist=read.worklist,
                assigned_to=read.assigned_to,
            ),
        )
        work.after_commit(lambda: deps.metrics.sla_breaches.labels(priority.value).inc())
    step = escalate(policy, worklist=read.worklist, priority=priority, fired=kind, at=at)
    level = read.escalation_level + 1
    base = {
        "read_id": read.read_id,
        "worklist": read.worklist,
        "priority": read.priority,
        "study_instance_uid": read.study_uid,
    }
    if step.action is EscalationAction.TO_BACKUP:
        spec = policy.worklist(read.worklist)
        current = read.assigned_to
        backup = pick_reader(
            repo,
            spec,
            DutyRole.BACKUP,
            at,
            read.institution,
            exclude=[current] if current else [],
        )
        claimed = read.state == ReadState.CLAIMED.value
        assignee = current if claimed or backup is None else backup
        repo.update_read(read.read_id, assigned_to=assignee, escalation_level=level)
        repo.add_history(
            read.read_id,
            HistoryEntry(
                at=at,
                kind="escalated_backup",
                actor=SYSTEM,
                worklist=read.worklist,
                assigned_to=assignee,
                detail=f"backup {backup or 'none on duty'}"
                + (f"; claimed by {current}" if claimed else ""),
            ),
        )
        if backup:
            repo.notify(
                kind="read_escalated",
                at=at,
                user=backup,
                payload={**base, "reason": "turnaround target passed"},
            )
    elif step.action is EscalationAction.TO_NEXT_TIER:
        spec = policy.worklist(step.worklist)
        route = Route.PROVINCIAL if spec.tier is Tier.PROVINCIAL else Route.EXPERT
        state = ReadState.ESCALATED if route is Route.PROVINCIAL else ReadState.QUEUED
        assignee = pick_reader(repo, spec, DutyRole.PRIMARY, at, read.institution)
        reason = f"escalated from {read.worklist}: unsigned past target and backup grace"
        repo.update_read(
            read.read_id,
            worklist=step.worklist,
            route=route.value,
            state=state.value,
            assigned_to=assignee,
            due_at=step.new_due_at,
            escalation_level=level,
            reason=reason,
        )
        repo.add_history(
            read.read_id,
            HistoryEntry(
                at=at,
                kind="escalated_tier",
                actor=SYSTEM,
                worklist=step.worklist,
                assigned_to=assignee,
                detail=reason,
            ),
        )
        updated = repo.read(read.read_id)
        assert updated is not None
        announce_routing(work, deps, updated, at)
    else:
        repo.add_history(
            read.read_id,
            HistoryEntry(
                at=at,
                kind="escalation_exhausted",
                actor=SYSTEM,
                worklist=read.worklist,
                assigned_to=read.assigned_to,
            ),
        )
        repo.notify(
            kind="read_unsigned",
            at=at,
            role="admin",
            payload={**base, "reason": "no tier left to escalate to"},
        )
        return
    if step.next_timer is not None and step.next_fire_at is not None:
        repo.arm_timer(step.next_timer.value, read.read_id, step.next_fire_at, at)


def refresh_worklist_depth(deps: Dependencies) -> None:
    """Set the worklist depth gauge from the database."""
    with deps.unit() as work:
        depth = work.reporting.depth_by_worklist()
    for spec in deps.policy.worklists:
        deps.metrics.worklist_depth.labels(spec.name).set(depth.get(spec.name, 0))


def tick(deps: Dependencies) -> None:
    """One pass of the timer worker: fire due timers, then refresh the worklist gauges."""
    # A failed timer rolled back and stays unfired: the next pass retries it.
    fire_due_timers(deps)
    refresh_worklist_depth(deps)
