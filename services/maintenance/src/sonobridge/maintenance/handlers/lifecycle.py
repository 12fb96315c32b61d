"""Steps every ticket change shares: opening, breach timers, device status, preventive tasks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sonobridge.maintenance.domain.assignment import choose_engineer, region_of
from sonobridge.maintenance.domain.devices import Device, DeviceStatus, StatusChange
from sonobridge.maintenance.domain.preventive import schedules_for
from sonobridge.maintenance.domain.tickets import Ticket, TicketSource, TicketState
from sonobridge.maintenance.handlers import SERVICE, Dependencies, scope
from sonobridge.maintenance.handlers.devices import announce_status
from sonobridge.maintenance.ports import UnitOfWork


def sync_timers(work: UnitOfWork, ticket: Ticket, now: datetime) -> None:
    """Keep the durable breach timers in line with the ticket's clocks."""
    for clock in (ticket.ack_clock, ticket.onsite_clock):
        if clock.stopped_at is not None or ticket.is_breached(clock.name):
            work.timers.cancel(ticket.id, clock.name)
        elif ticket.paused:
            work.timers.arm(ticket.id, clock.name, None)
        else:
            work.timers.arm(ticket.id, clock.name, clock.due_at(ticket.pauses, now))


def settle_breaches(
    deps: Dependencies, work: UnitOfWork, ticket: Ticket, now: datetime
) -> list[str]:
    """Flag every clock past its target once; escalate and count each."""
    breached = []
    for name in ticket.unflagged_breaches(now):
        before = ticket.state
        region = region_of(deps.config.domain_regions(), ticket.institution_id)
        contact = region.escalation_contact if region else ""
        if ticket.record_breach(
            name, at=max(now, ticket.updated_at or now), actor=SERVICE, escalate_to=contact
        ):
            breached.append(name)
            note = ticket.history[-1].note
            work.events.ticket_updated(ticket, before=before, at=now, actor=SERVICE, note=note)
            work.audit.write(
                at=now, actor=SERVICE, action="ticket.breach", target=ticket.id, detail=note
            )
            work.after_commit.append(deps.metrics.sla_breaches.labels(name).inc)
    return breached


def open_ticket_for(
    deps: Dependencies,
    work: UnitOfWork,
    device: Device,
    *,
    symptom: str,
    source: TicketSource,
    opened_by: str,
    at: datetime,
    institution_id: str = "",
    evidence: Sequence[str] = (),
    study_uid: str = "",
    rule: str = "",
) -> Ticket:
    """Open a ticket on the device, assign it in its region, arm its timers, mark it faulty."""
    institution = institution_id or device.holder
    region = region_of(deps.config.domain_regions(), institution)
    ticket = Ticket.open(
        ticket_id=str(uuid.uuid4()),
        device_serial=device.serial,
        institution_id=institution,
        symptom=symptom,
        source=source,
        opened_by=opened_by,
        at=at,
        targets=deps.config.sla.targets(preventive=source is TicketSource.PREVENTIVE),
        assignee=choose_engineer(region, work.tickets.open_load()),
        region=region.name if region else "",
        evidence_keys=list(dict.fromkeys(evidence)),
        study_instance_uid=study_uid,
    )
    work.tickets.add(ticket, rule=rule)
    sync_timers(work, ticket, at)
    work.events.ticket_opened(ticket)
    if source is not TicketSource.PREVENTIVE and device.status is DeviceStatus.IN_SERVICE:
        change = device.set_status(
            DeviceStatus.FAULTY, at=at, reason=symptom[:200], ticket_id=ticket.id
        )
        work.devices.save(device)
        announce_status(work, change, opened_by)
    work.audit.write(
        at=at,
        actor=opened_by,
        action="ticket.open",
        target=ticket.id,
        detail=f"{device.serial}: {symptom[:200]}",
    )
    return ticket


def after_change(
    deps: Dependencies,
    work: UnitOfWork,
    ticket: Ticket,
    before: TicketState,
    actor: str,
    note: str,
    now: datetime,
) -> None:
    """Store, re-arm timers, settle late breaches, move the device, announce the change."""
    just_acknowledged = (
        before is not TicketState.ACKNOWLEDGED
        and ticket.state is TicketState.ACKNOWLEDGED
        and ticket.acknowledged_at == now
    )
    settle_breaches(deps, work, ticket, now)
    work.tickets.save(ticket)
    sync_timers(work, ticket, now)
    work.events.ticket_updated(ticket, before=before, at=now, actor=actor, note=note)
    if just_acknowledged:
        waited = ticket.time_to_acknowledge()
        assert waited is not None
        work.after_commit.append(
            lambda: deps.metrics.time_to_acknowledge.observe(waited.total_seconds())
        )
    if ticket.state is TicketState.ON_SITE and before is not TicketState.ON_SITE:
        waited_onsite = ticket.time_to_onsite()
        assert waited_onsite is not None
        work.after_commit.append(
            lambda: deps.metrics.time_to_onsite.observe(waited_onsite.total_seconds())
        )
    if before is ticket.state or ticket.source is TicketSource.PREVENTIVE:
        if ticket.source is TicketSource.PREVENTIVE and ticket.state is TicketState.RESOLVED:
            _reschedule_preventive(deps, work, ticket, now)
        elif ticket.source is TicketSource.PREVENTIVE and ticket.state is TicketState.CANCELLED:
            # A cancelled visit leaves the task due, so the next sweep opens a fresh ticket.
            work.preventive.release(ticket.id)
        return
    device = scope.device(work, ticket.device_serial)
    change: StatusChange | None = None
    if ticket.state is TicketState.ON_SITE and device.status is DeviceStatus.FAULTY:
        change = device.set_status(
            DeviceStatus.IN_REPAIR, at=now, reason="engineer on site", ticket_id=ticket.id
        )
    elif ticket.state in (TicketState.RESOLVED, TicketState.CANCELLED) and device.status in (
        DeviceStatus.FAULTY,
        DeviceStatus.IN_REPAIR,
    ):
        others = [
            t
            for t in work.tickets.open_for_device(device.serial)
            if t.id != ticket.id and t.source is not TicketSource.PREVENTIVE
        ]
        if not others:
            change = device.set_status(
                DeviceStatus.IN_SERVICE,
                at=now,
                reason=f"ticket {ticket.state.value}",
                ticket_id=ticket.id,
            )
    if change is not None:
        work.devices.save(device)
        announce_status(work, change, actor)


def _reschedule_preventive(
    deps: Dependencies, work: UnitOfWork, ticket: Ticket, now: datetime
) -> None:
    task = work.preventive.held_by(ticket.id)
    if task is None:
        return
    device = work.devices.get(ticket.device_serial)
    assert device is not None
    schedule = next(
        (s for s in schedules_for(deps.config.schedules(), device.model) if s.kind == task.kind),
        None,
    )
    next_due = schedule.next_due(now) if schedule is not None else None
    work.preventive.done(task.device_serial, task.kind, at=now, next_due_at=next_due)
