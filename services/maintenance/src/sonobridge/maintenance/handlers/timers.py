"""Time-driven use cases: fire overdue breach timers and open due preventive tickets."""

from __future__ import annotations

import logging

from sonobridge.maintenance.domain.devices import DeviceStatus
from sonobridge.maintenance.domain.preventive import schedules_for
from sonobridge.maintenance.domain.tickets import TicketSource
from sonobridge.maintenance.handlers import SERVICE, Dependencies, scope
from sonobridge.maintenance.handlers.lifecycle import open_ticket_for, settle_breaches, sync_timers

log = logging.getLogger(__name__)


def tick(deps: Dependencies) -> tuple[int, int]:
    """One pass of the timer worker; return (breaches fired, preventive tickets opened)."""
    # The timers table is durable: a failed pass rolled back and is retried on the next one.
    fired = fire_due_timers(deps)
    opened = len(open_due_preventive(deps))
    if fired or opened:
        log.info("timers: %d breaches, %d preventive tickets", fired, opened)
    return fired, opened


def fire_due_timers(deps: Dependencies, limit: int = 100) -> int:
    """Flag and escalate every clock whose deadline passed, exactly once; return the breaches."""
    now = deps.now()
    with deps.units() as work:
        due = work.timers.due(now, limit)
    fired = 0
    for timer in due:
        with deps.units() as work:
            if not work.timers.claim(timer.id, now):
                continue
            ticket = scope.ticket(work, timer.ticket_id)
            recorded = settle_breaches(deps, work, ticket, now)
            if recorded:
                work.tickets.save(ticket)
                fired += len(recorded)
            sync_timers(work, ticket, now)
    return fired


def open_due_preventive(deps: Dependencies, limit: int = 100) -> list[str]:
    """Open a ticket for every preventive task that is due and has none open."""
    now = deps.now()
    opened = []
    with deps.units() as work:
        due = work.preventive.due(now, limit)
    for task in due:
        with deps.units() as work:
            claimed = work.preventive.claim(task.device_serial, task.kind)
            device = work.devices.get(task.device_serial, lock=True)
            if claimed is None or device is None or device.status is DeviceStatus.RETIRED:
                continue
            schedule = next(
                (
                    s
                    for s in schedules_for(deps.config.schedules(), device.model)
                    if s.kind == task.kind
                ),
                None,
            )
            symptom = schedule.symptom() if schedule else f"preventive {task.kind} due"
            ticket = open_ticket_for(
                deps,
                work,
                device,
                symptom=symptom,
                source=TicketSource.PREVENTIVE,
                opened_by=SERVICE,
                at=now,
                rule=f"preventive:{task.kind}",
            )
            work.preventive.hold(task.device_serial, task.kind, ticket.id)
            opened.append(ticket.id)
    return opened
