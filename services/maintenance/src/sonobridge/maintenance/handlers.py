"""Maintenance use cases: the only functions REST, gRPC, the consumer and the timers call."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, BinaryIO, cast

from sqlalchemy import CursorResult, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.access import AccessPolicy, Action
from sonobridge.common.auth import Principal
from sonobridge.common.delivery import Outbox
from sonobridge.common.objects.ports import ObjectStore
from sonobridge.common.problems import Conflict, Forbidden, NotFound
from sonobridge.maintenance.adapters import messages, orm
from sonobridge.maintenance.adapters.repositories import (
    DeviceRepository,
    TicketRepository,
    audit,
    aware,
)
from sonobridge.maintenance.domain.assignment import choose_engineer, region_of
from sonobridge.maintenance.domain.devices import Device, DeviceStatus, StatusChange
from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.health import TelemetryReading, evaluate_telemetry
from sonobridge.maintenance.domain.preventive import schedules_for
from sonobridge.maintenance.domain.tickets import (
    Ticket,
    TicketSource,
    TicketState,
)
from sonobridge.maintenance.domain.utilisation import (
    DeviceUsage,
    UtilisationReport,
    analyse,
    daily_seconds,
)
from sonobridge.maintenance.metrics import FleetSnapshot, MaintenanceMetrics
from sonobridge.maintenance.settings import MaintenanceSettings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
"""Returns the current time as an aware UTC datetime."""

SERVICE = "maintenance"
FLEET_WIDE_ROLES = ("engineer", "admin", "service")
PHOTO_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


@dataclass
class Dependencies:
    """What the handlers need, built once by bootstrap."""

    sessions: sessionmaker[Session]
    outbox: Outbox
    config: MaintenanceSettings
    clock: Clock
    metrics: MaintenanceMetrics
    store: ObjectStore | None = None
    access: AccessPolicy = field(default_factory=AccessPolicy)


@dataclass
class Work:
    """One transaction plus the metric updates to make once it commits."""

    session: Session
    deps: Dependencies
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    @property
    def devices(self) -> DeviceRepository:
        """Devices in this transaction."""
        return DeviceRepository(self.session)

    @property
    def tickets(self) -> TicketRepository:
        """Tickets in this transaction."""
        return TicketRepository(self.session)

    def emit(self, message: Any, key: str) -> None:
        """Stage an event in the outbox of this transaction."""
        self.deps.outbox.emit(self.session, message, source=SERVICE, key=key)


@contextmanager
def unit(deps: Dependencies) -> Iterator[Work]:
    """Run a block in one transaction; apply metric updates only if it commits."""
    with deps.sessions.begin() as session:
        work = Work(session, deps)
        yield work
    for effect in work.after_commit:
        effect()


def finish(work: Work) -> None:
    """Apply metric updates now (for transactions owned by the consumer worker)."""
    for effect in work.after_commit:
        effect()
    work.after_commit.clear()


# -- scoping ------------------------------------------------------------------------------------


def visible_institutions(principal: Principal) -> list[str] | None:
    """Return the institutions the caller may see, or None for the whole consortium."""
    if principal.has_role(*FLEET_WIDE_ROLES):
        return None
    if not principal.institution:
        raise Forbidden("token carries no institution")
    return [principal.institution]


def _require_device_visible(principal: Principal, device: Device) -> None:
    scope = visible_institutions(principal)
    if scope is not None and device.institution_id not in scope and device.loaned_to not in scope:
        raise NotFound(f"device {device.serial} not found")


def _require_ticket_visible(principal: Principal, ticket: Ticket) -> None:
    scope = visible_institutions(principal)
    if scope is not None and ticket.institution_id not in scope:
        raise NotFound(f"ticket {ticket.id} not found")


def _device(work: Work, serial: str, principal: Principal | None = None) -> Device:
    device = work.devices.get(serial, lock=True)
    if device is None:
        raise NotFound(f"device {serial} not found")
    if principal is not None:
        _require_device_visible(principal, device)
    return device


def _ticket(work: Work, ticket_id: str, principal: Principal | None = None) -> Ticket:
    ticket = work.tickets.get(ticket_id, lock=True)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found")
    if principal is not None:
        _require_ticket_visible(principal, ticket)
    return ticket


def _now(deps: Dependencies) -> datetime:
    now = deps.clock()
    if now.tzinfo is None:
        raise ValueError("clock must return aware datetimes")
    return now.astimezone(UTC)


def _day(deps: Dependencies, at: datetime) -> date:
    return (at + timedelta(hours=deps.config.utilisation.utc_offset_hours)).date()


# -- devices ------------------------------------------------------------------------------------


def _announce_status(work: Work, change: StatusChange | None, actor: str) -> None:
    if change is None:
        return
    work.devices.record(
        change.serial,
        at=change.at,
        kind="status",
        actor=actor,
        from_value=change.from_status.value,
        to_value=change.to_status.value,
        note=change.reason,
        ticket_id=change.ticket_id,
    )
    work.emit(messages.device_status_changed(change), change.serial)


def register_device(
    deps: Dependencies,
    principal: Principal,
    *,
    serial: str,
    model: str,
    institution_id: str,
    manufacturer: str = "",
    firmware_version: str = "",
    spare: bool = False,
    operators: Sequence[str] = (),
) -> Device:
    """Add a probe to the registry and schedule its preventive tasks."""
    principal.require_role("admin")
    now = _now(deps)
    # Look up the serial as it will be stored: "X\x1d" and "X" are one device, not a 500.
    serial = serial.strip()
    if not serial or not model.strip():
        raise InvalidRequest("serial and model must not be empty")
    with unit(deps) as work:
        if work.devices.get(serial) is not None:
            raise Conflict(f"device {serial} is already registered")
        device = Device(
            serial=serial,
            model=model.strip(),
            institution_id=institution_id.strip(),
            manufacturer=manufacturer,
            firmware_version=firmware_version,
            spare=spare,
            operators=list(dict.fromkeys(operators)),
            registered_at=now,
        )
        _add_device(work, device, principal.user, now)
    return device


def _add_device(work: Work, device: Device, actor: str, now: datetime) -> None:
    work.devices.add(device)
    work.devices.record(
        device.serial, at=now, kind="registered", actor=actor, to_value=device.institution_id
    )
    for schedule in schedules_for(work.deps.config.schedules(), device.model):
        work.session.execute(
            insert(orm.preventive_tasks).values(
                device_serial=device.serial,
                kind=schedule.kind,
                next_due_at=schedule.next_due(now),
            )
        )
    audit(work.session, at=now, actor=actor, action="device.register", target=device.serial)


def _device_for_event(work: Work, serial: str, institution: str, at: datetime) -> Device:
    """Return the device, registering it if an event names a probe the registry lacks.

    A probe that scans is a real probe; keeping its usage and health beats dropping them. An
    administrator completes its model later.
    """
    device = work.devices.get(serial, lock=True)
    if device is None:
        device = Device(
            serial=serial, model="unknown", institution_id=institution, registered_at=at
        )
        work.devices.add(device)
        work.devices.record(
            serial,
            at=at,
            kind="registered",
            actor=SERVICE,
            to_value=institution,
            note="registered automatically from an event",
        )
    return device


def transfer_device(
    deps: Dependencies, principal: Principal, serial: str, to_institution: str, note: str = ""
) -> Device:
    """Move a probe's home to another institution, keeping the history."""
    principal.require_role("admin")
    now = _now(deps)
    with unit(deps) as work:
        device = _device(work, serial)
        previous = device.transfer(to_institution.strip())
        work.devices.save(device)
        work.devices.record(
            serial,
            at=now,
            kind="transfer",
            actor=principal.user,
            from_value=previous,
            to_value=device.institution_id,
            note=note,
        )
        audit(
            work.session,
            at=now,
            actor=principal.user,
            action="device.transfer",
            target=serial,
            detail=f"{previous} -> {device.institution_id}",
        )
    return device


def set_operators(
    deps: Dependencies, principal: Principal, serial: str, operators: Sequence[str]
) -> Device:
    """Replace the operators assigned to a probe."""
    principal.require_role("admin")
    now = _now(deps)
    with unit(deps) as work:
        device = _device(work, serial)
        before = ",".join(device.operators)
        device.operators = list(dict.fromkeys(o.strip() for o in operators if o.strip()))
        work.devices.save(device)
        work.devices.record(
            serial,
            at=now,
            kind="operators",
            actor=principal.user,
            from_value=before[:128],
            to_value=",".join(device.operators)[:128],
        )
        audit(work.session, at=now, actor=principal.user, action="device.operators", target=serial)
    return device


def retire_device(deps: Dependencies, principal: Principal, serial: str, reason: str) -> Device:
    """Take a probe out of the fleet for good."""
    principal.require_role("admin")
    now = _now(deps)
    with unit(deps) as work:
        device = _device(work, serial)
        if work.tickets.open_for_device(serial):
            raise Conflict(f"device {serial} has open tickets; close or cancel them first")
        if device.status is DeviceStatus.LOANED_OUT:
            raise Conflict(f"device {serial} is on loan; take it back first")
        change = device.set_status(DeviceStatus.RETIRED, at=now, reason=reason or "retired")
        work.devices.save(device)
        _announce_status(work, change, principal.user)
        audit(work.session, at=now, actor=principal.user, action="device.retire", target=serial)
    return device


@dataclass(frozen=True)
class DeviceView:
    """A device with what callers usually want next to it."""

    device: Device
    open_ticket_id: str
    scan_seconds_7d: float


def _device_view(work: Work, device: Device, now: datetime) -> DeviceView:
    ticket = work.tickets.open_fault_ticket(device.serial)
    since = _day(work.deps, now) - timedelta(days=6)
    u = orm.daily_usage
    rows = work.session.execute(
        select(u.c.exam_seconds, u.c.telemetry_seconds).where(
            u.c.device_serial == device.serial, u.c.day >= since
        )
    )
    seconds = sum(daily_seconds(e, t) for e, t in rows)
    return DeviceView(device, ticket.id if ticket else "", seconds)


def get_device(deps: Dependencies, principal: Principal, serial: str) -> DeviceView:
    """Return one device the caller may see."""
    with unit(deps) as work:
        device = work.devices.get(serial)
        if device is None:
            raise NotFound(f"device {serial} not found")
        _require_device_visible(principal, device)
        return _device_view(work, device, _now(deps))


def list_devices(
    deps: Dependencies,
    principal: Principal,
    *,
    institution_id: str = "",
    status: DeviceStatus | None = None,
    after: str = "",
    limit: int = 100,
) -> tuple[list[DeviceView], str]:
    """Return a page of devices the caller may see, and the cursor of the next page."""
    if not 1 <= limit <= 1000:
        raise InvalidRequest("page size must be between 1 and 1000")
    scope = visible_institutions(principal)
    if institution_id:
        if scope is not None and institution_id not in scope:
            raise Forbidden(f"institution {institution_id} is outside your scope")
        scope = [institution_id]
    with unit(deps) as work:
        found = work.devices.find(institutions=scope, status=status, after=after, limit=limit + 1)
        now = _now(deps)
        views = [_device_view(work, d, now) for d in found[:limit]]
    cursor = found[limit - 1].serial if len(found) > limit else ""
    return views, cursor


def device_history(deps: Dependencies, principal: Principal, serial: str) -> list[dict[str, Any]]:
    """Return a device's registrations, transfers and status changes."""
    with unit(deps) as work:
        device = work.devices.get(serial)
        if device is None:
            raise NotFound(f"device {serial} not found")
        _require_device_visible(principal, device)
        return work.devices.history(serial)


# -- tickets ------------------------------------------------------------------------------------


def _sync_timers(work: Work, ticket: Ticket, now: datetime) -> None:
    """Keep the durable breach timers in line with the ticket's clocks."""
    t = orm.sla_timers
    for clock in (ticket.ack_clock, ticket.onsite_clock):
        row = work.session.execute(
            select(t.c.id, t.c.status).where(t.c.ticket_id == ticket.id, t.c.clock == clock.name)
        ).first()
        if clock.stopped_at is not None or ticket.is_breached(clock.name):
            values: dict[str, Any] = {"status": "cancelled"}
        elif ticket.paused:
            values = {"status": "pending", "due_at": None}
        else:
            values = {"status": "pending", "due_at": clock.due_at(ticket.pauses, now)}
        if row is None:
            work.session.execute(insert(t).values(ticket_id=ticket.id, clock=clock.name, **values))
        elif row.status != "fired":
            work.session.execute(update(t).where(t.c.id == row.id).values(**values))


def _escalation_contact(work: Work, ticket: Ticket) -> str:
    region = region_of(work.deps.config.domain_regions(), ticket.institution_id)
    return region.escalation_contact if region else ""


def _settle_breaches(work: Work, ticket: Ticket, now: datetime) -> list[str]:
    """Flag every clock past its target once; escalate and count each."""
    breached = []
    for name in ticket.unflagged_breaches(now):
        before = ticket.state
        contact = _escalation_contact(work, ticket)
        if ticket.record_breach(
            name, at=max(now, ticket.updated_at or now), actor=SERVICE, escalate_to=contact
        ):
            breached.append(name)
            note = ticket.history[-1].note
            work.emit(
                messages.ticket_updated(ticket, before=before, at=now, actor=SERVICE, note=note),
                ticket.device_serial,
            )
            audit(
                work.session,
                at=now,
                actor=SERVICE,
                action="ticket.breach",
                target=ticket.id,
                detail=note,
            )
            work.after_commit.append(work.deps.metrics.sla_breaches.labels(name).inc)
    return breached


def _open_ticket(
    work: Work,
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
    config = work.deps.config
    institution = institution_id or device.holder
    region = region_of(config.domain_regions(), institution)
    ticket = Ticket.open(
        ticket_id=str(uuid.uuid4()),
        device_serial=device.serial,
        institution_id=institution,
        symptom=symptom,
        source=source,
        opened_by=opened_by,
        at=at,
        targets=config.sla.targets(preventive=source is TicketSource.PREVENTIVE),
        assignee=choose_engineer(region, work.tickets.open_load()),
        region=region.name if region else "",
        evidence_keys=list(dict.fromkeys(evidence)),
        study_instance_uid=study_uid,
    )
    work.tickets.add(ticket, rule=rule)
    _sync_timers(work, ticket, at)
    work.emit(messages.ticket_opened(ticket), device.serial)
    if source is not TicketSource.PREVENTIVE and device.status is DeviceStatus.IN_SERVICE:
        change = device.set_status(
            DeviceStatus.FAULTY, at=at, reason=symptom[:200], ticket_id=ticket.id
        )
        work.devices.save(device)
        _announce_status(work, change, opened_by)
    audit(
        work.session,
        at=at,
        actor=opened_by,
        action="ticket.open",
        target=ticket.id,
        detail=f"{device.serial}: {symptom[:200]}",
    )
    return ticket


def open_ticket(
    deps: Dependencies,
    principal: Principal,
    *,
    device_serial: str,
    symptom: str,
    institution_id: str = "",
    source: TicketSource = TicketSource.APP,
    evidence_keys: Sequence[str] = (),
    opened_by: str = "",
    idempotency_key: str = "",
) -> tuple[Ticket, bool]:
    """Open a fault ticket (one-tap report); a repeated idempotency key returns the first one."""
    principal.require_role("operator", "physician", "coordinator", "engineer", "admin", "service")
    if source is not TicketSource.APP and not principal.has_role("service", "admin"):
        raise Forbidden("only services and administrators open automatic tickets")
    if len(idempotency_key) > 128:
        raise InvalidRequest("idempotency key must be at most 128 characters")
    now = _now(deps)
    with unit(deps) as work:
        if idempotency_key:
            known = work.session.execute(
                select(orm.idempotency_keys.c.ticket_id).where(
                    orm.idempotency_keys.c.scope == principal.user,
                    orm.idempotency_keys.c.key == idempotency_key,
                )
            ).scalar_one_or_none()
            if known is not None:
                return _ticket(work, known, principal), False
        device = _device(work, device_serial, principal)
        if device.status is DeviceStatus.RETIRED:
            raise Conflict(f"device {device_serial} is retired")
        if institution_id and institution_id not in (device.institution_id, device.loaned_to):
            raise InvalidRequest(f"device {device_serial} is not at institution {institution_id}")
        scope = visible_institutions(principal)
        if scope is not None and institution_id and institution_id not in scope:
            raise Forbidden(f"institution {institution_id} is outside your scope")
        ticket = _open_ticket(
            work,
            device,
            symptom=symptom,
            source=source,
            opened_by=opened_by or principal.user,
            at=now,
            institution_id=institution_id,
            evidence=evidence_keys,
        )
        if idempotency_key:
            work.session.execute(
                insert(orm.idempotency_keys).values(
                    scope=principal.user, key=idempotency_key, ticket_id=ticket.id, created_at=now
                )
            )
    return ticket, True


def attach_photo(
    deps: Dependencies,
    principal: Principal,
    ticket_id: str,
    stream: BinaryIO,
    *,
    content_type: str,
    length: int | None = None,
) -> str:
    """Store a photo of the fault under the ticket and link it as evidence; return its key."""
    if deps.store is None:
        raise NotFound("this deployment has no object store for photos")
    extension = PHOTO_TYPES.get(content_type.split(";")[0].strip().lower())
    if extension is None:
        raise InvalidRequest(f"photos must be one of {', '.join(sorted(PHOTO_TYPES))}")
    with unit(deps) as work:
        _ticket(work, ticket_id, principal)
    key = f"maintenance/tickets/{ticket_id}/{uuid.uuid4().hex}.{extension}"
    deps.store.put(
        key,
        stream,
        length=length,
        content_type=content_type,
        metadata={"ticket": ticket_id, "uploaded-by": principal.user},
    )
    now = _now(deps)
    with unit(deps) as work:
        ticket = _ticket(work, ticket_id, principal)
        ticket.add_evidence([key], at=now, actor=principal.user, note="photo attached")
        work.tickets.save(ticket)
        audit(
            work.session,
            at=now,
            actor=principal.user,
            action="ticket.photo",
            target=ticket_id,
            detail=key,
        )
    return key


def _may_work_on(principal: Principal, ticket: Ticket) -> None:
    if principal.has_role("admin"):
        return
    if not principal.has_role("engineer"):
        raise Forbidden("only engineers and administrators work tickets")
    if ticket.assignee and ticket.assignee != principal.user:
        raise Forbidden(f"ticket {ticket.id} is assigned to {ticket.assignee}")


def _after_change(
    work: Work, ticket: Ticket, before: TicketState, actor: str, note: str, now: datetime
) -> None:
    """Store, re-arm timers, settle late breaches, move the device, announce the change."""
    deps = work.deps
    just_acknowledged = (
        before is not TicketState.ACKNOWLEDGED
        and ticket.state is (TicketState.ACKNOWLEDGED)
        and ticket.acknowledged_at == now
    )
    _settle_breaches(work, ticket, now)
    work.tickets.save(ticket)
    _sync_timers(work, ticket, now)
    work.emit(
        messages.ticket_updated(ticket, before=before, at=now, actor=actor, note=note),
        ticket.device_serial,
    )
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
            _reschedule_preventive(work, ticket, now)
        elif ticket.source is TicketSource.PREVENTIVE and ticket.state is TicketState.CANCELLED:
            _release_preventive(work, ticket)
        return
    device = _device(work, ticket.device_serial)
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
        _announce_status(work, change, actor)


def transition_ticket(
    deps: Dependencies, principal: Principal, ticket_id: str, to: TicketState, note: str = ""
) -> Ticket:
    """Move a ticket along its lifecycle.

    Engineers acknowledge, dispatch, arrive and resolve; the reporting centre (or an
    administrator) closes a resolved ticket; the reporter or an administrator cancels.
    """
    now = _now(deps)
    with unit(deps) as work:
        ticket = _ticket(work, ticket_id, principal)
        if to is TicketState.CLOSED:
            if not principal.has_role("admin") and not (
                principal.has_role("operator", "physician", "coordinator")
                and principal.institution == ticket.institution_id
            ):
                raise Forbidden("the reporting centre or an administrator closes a ticket")
            ticket.check_can_close()
        elif to is TicketState.CANCELLED:
            if not principal.has_role("admin") and principal.user != ticket.opened_by:
                raise Forbidden("only the reporter or an administrator cancels a ticket")
        else:
            _may_work_on(principal, ticket)
        before = ticket.state
        ticket.transition(to, at=now, actor=principal.user, note=note)
        _after_change(work, ticket, before, principal.user, note, now)
        audit(
            work.session,
            at=now,
            actor=principal.user,
            action=f"ticket.{to.value}",
            target=ticket_id,
            detail=note,
        )
    return ticket


def pause_ticket(deps: Dependencies, principal: Principal, ticket_id: str, reason: str) -> Ticket:
    """Stop the SLA clocks (waiting for parts or site access)."""
    now = _now(deps)
    with unit(deps) as work:
        ticket = _ticket(work, ticket_id, principal)
        _may_work_on(principal, ticket)
        ticket.pause(at=now, actor=principal.user, reason=reason)
        _after_change(work, ticket, ticket.state, principal.user, f"paused: {reason}", now)
        audit(
            work.session,
            at=now,
            actor=principal.user,
            action="ticket.pause",
            target=ticket_id,
            detail=reason,
        )
    return ticket


def resume_ticket(
    deps: Dependencies, principal: Principal, ticket_id: str, note: str = ""
) -> Ticket:
    """Restart the SLA clocks."""
    now = _now(deps)
    with unit(deps) as work:
        ticket = _ticket(work, ticket_id, principal)
        _may_work_on(principal, ticket)
        ticket.resume(at=now, actor=principal.user, note=note)
        _after_change(work, ticket, ticket.state, principal.user, note or "resumed", now)
        audit(work.session, at=now, actor=principal.user, action="ticket.resume", target=ticket_id)
    return ticket


def reassign_ticket(
    deps: Dependencies, principal: Principal, ticket_id: str, engineer: str, note: str = ""
) -> Ticket:
    """Hand a ticket to another engineer; the SLA clocks keep running (see Ticket.reassign)."""
    principal.require_role("admin")
    now = _now(deps)
    with unit(deps) as work:
        ticket = _ticket(work, ticket_id, principal)
        before = ticket.state
        ticket.reassign(engineer.strip(), at=now, actor=principal.user, note=note)
        _after_change(work, ticket, before, principal.user, ticket.history[-1].note, now)
        audit(
            work.session,
            at=now,
            actor=principal.user,
            action="ticket.reassign",
            target=ticket_id,
            detail=engineer,
        )
    return ticket


def lend_loaner(
    deps: Dependencies, principal: Principal, ticket_id: str, loaner_serial: str
) -> Ticket:
    """Lend a spare probe to the ticket's centre while its own is out."""
    principal.require_role("engineer", "admin")
    now = _now(deps)
    with unit(deps) as work:
        ticket = _ticket(work, ticket_id, principal)
        loaner = _device(work, loaner_serial)
        if loaner.serial == ticket.device_serial:
            raise InvalidRequest("a device cannot be its own loaner")
        ticket.lend_loaner(loaner.serial, at=now, actor=principal.user)
        change = loaner.lend_to(ticket.institution_id, at=now, ticket_id=ticket.id)
        work.devices.save(loaner)
        _announce_status(work, change, principal.user)
        _after_change(
            work, ticket, ticket.state, principal.user, f"loaner {loaner.serial} lent", now
        )
        audit(
            work.session,
            at=now,
            actor=principal.user,
            action="loaner.lend",
            target=loaner.serial,
            detail=f"ticket {ticket_id} -> {ticket.institution_id}",
        )
    return ticket


def return_loaner(deps: Dependencies, principal: Principal, ticket_id: str) -> Ticket:
    """Take the loaner back into the spare pool."""
    principal.require_role("engineer", "admin")
    now = _now(deps)
    with unit(deps) as work:
        ticket = _ticket(work, ticket_id, principal)
        serial = ticket.take_back_loaner(at=now, actor=principal.user)
        loaner = _device(work, serial)
        change = loaner.take_back(at=now, ticket_id=ticket.id)
        work.devices.save(loaner)
        _announce_status(work, change, principal.user)
        _after_change(work, ticket, ticket.state, principal.user, f"loaner {serial} returned", now)
        audit(work.session, at=now, actor=principal.user, action="loaner.return", target=serial)
    return ticket


# Study UIDs in history notes ("dead elements in exam 1.2.840...").
_UID_TEXT = re.compile(r"\b[0-9]+(?:\.[0-9]+){3,}\b")


def shown_to(deps: Dependencies, principal: Principal, ticket: Ticket) -> Ticket:
    """Return the ticket without exam references unless the caller may read its institution."""
    if deps.access.may(principal, Action.READ, ticket.institution_id):
        return ticket
    return replace(
        ticket,
        study_instance_uid="",
        evidence_keys=[k for k in ticket.evidence_keys if not k.startswith(("dicom/", "derived/"))],
        history=[replace(c, note=_UID_TEXT.sub("[withheld]", c.note)) for c in ticket.history],
        new_changes=[],
    )


def get_ticket(deps: Dependencies, principal: Principal, ticket_id: str) -> Ticket:
    """Return one ticket the caller may see."""
    with unit(deps) as work:
        ticket = work.tickets.get(ticket_id)
        if ticket is None:
            raise NotFound(f"ticket {ticket_id} not found")
        _require_ticket_visible(principal, ticket)
        return ticket


def list_tickets(
    deps: Dependencies,
    principal: Principal,
    *,
    states: Sequence[TicketState] = (),
    assignee: str = "",
    device_serial: str = "",
    after: str = "",
    limit: int = 100,
) -> tuple[list[Ticket], str]:
    """Return a page of tickets the caller may see, and the cursor of the next page."""
    if not 1 <= limit <= 1000:
        raise InvalidRequest("page size must be between 1 and 1000")
    with unit(deps) as work:
        found = work.tickets.find(
            institutions=visible_institutions(principal),
            states=states,
            assignee=assignee,
            device_serial=device_serial,
            after=after,
            limit=limit + 1,
        )
    cursor = found[limit - 1].id if len(found) > limit else ""
    return found[:limit], cursor


# -- breach timers and preventive schedules ------------------------------------------------------


def fire_due_timers(deps: Dependencies, limit: int = 100) -> int:
    """Flag and escalate every clock whose deadline passed, exactly once; return the breaches."""
    now = _now(deps)
    t = orm.sla_timers
    with unit(deps) as work:
        due = work.session.execute(
            select(t.c.id, t.c.ticket_id)
            .where(t.c.status == "pending", t.c.due_at.is_not(None), t.c.due_at < now)
            .order_by(t.c.due_at)
            .limit(limit)
        ).fetchall()
    fired = 0
    for timer_id, ticket_id in due:
        with unit(deps) as work:
            # The conditional update is the exactly-once guard across replicas and restarts.
            result = work.session.execute(
                update(t)
                .where(t.c.id == timer_id, t.c.status == "pending", t.c.due_at < now)
                .values(status="fired", fired_at=now)
            )
            claimed = cast(CursorResult[Any], result).rowcount
            if claimed != 1:
                continue
            ticket = _ticket(work, ticket_id)
            recorded = _settle_breaches(work, ticket, now)
            if recorded:
                work.tickets.save(ticket)
                fired += len(recorded)
            _sync_timers(work, ticket, now)
    return fired


def _reschedule_preventive(work: Work, ticket: Ticket, now: datetime) -> None:
    p = orm.preventive_tasks
    row = work.session.execute(select(p).where(p.c.open_ticket_id == ticket.id)).first()
    if row is None:
        return
    device = work.devices.get(ticket.device_serial)
    assert device is not None
    schedule = next(
        (
            s
            for s in schedules_for(work.deps.config.schedules(), device.model)
            if s.kind == row.kind
        ),
        None,
    )
    values: dict[str, Any] = {"open_ticket_id": None, "last_done_at": now}
    if schedule is not None:
        values["next_due_at"] = schedule.next_due(now)
    work.session.execute(
        update(p)
        .where(p.c.device_serial == row.device_serial, p.c.kind == row.kind)
        .values(**values)
    )


def _release_preventive(work: Work, ticket: Ticket) -> None:
    # A cancelled visit leaves the task due, so the next sweep opens a fresh ticket.
    p = orm.preventive_tasks
    work.session.execute(
        update(p).where(p.c.open_ticket_id == ticket.id).values(open_ticket_id=None)
    )


def open_due_preventive(deps: Dependencies, limit: int = 100) -> list[str]:
    """Open a ticket for every preventive task that is due and has none open."""
    now = _now(deps)
    p = orm.preventive_tasks
    opened = []
    with unit(deps) as work:
        due = work.session.execute(
            select(p.c.device_serial, p.c.kind)
            .where(p.c.next_due_at <= now, p.c.open_ticket_id.is_(None))
            .order_by(p.c.next_due_at)
            .limit(limit)
        ).fetchall()
    for serial, kind in due:
        with unit(deps) as work:
            row = work.session.execute(
                select(p)
                .where(p.c.device_serial == serial, p.c.kind == kind, p.c.open_ticket_id.is_(None))
                .with_for_update()
            ).first()
            device = work.devices.get(serial, lock=True)
            if row is None or device is None or device.status is DeviceStatus.RETIRED:
                continue
            schedule = next(
                (s for s in schedules_for(deps.config.schedules(), device.model) if s.kind == kind),
                None,
            )
            symptom = schedule.symptom() if schedule else f"preventive {kind} due"
            ticket = _open_ticket(
                work,
                device,
                symptom=symptom,
                source=TicketSource.PREVENTIVE,
                opened_by=SERVICE,
                at=now,
                rule=f"preventive:{kind}",
            )
            work.session.execute(
                update(p)
                .where(p.c.device_serial == serial, p.c.kind == kind)
                .values(open_ticket_id=ticket.id)
            )
            opened.append(ticket.id)
    return opened


# -- usage, telemetry and probe health -----------------------------------------------------------


def _add_usage(
    work: Work, serial: str, institution: str, day: date, *, exam: float = 0, telemetry: float = 0
) -> None:
    """Add scan seconds to a device-day and count the growth of its scan time once."""
    u = orm.daily_usage
    row = work.session.execute(
        select(u.c.exam_seconds, u.c.telemetry_seconds)
        .where(u.c.device_serial == serial, u.c.day == day)
        .with_for_update()
    ).first()
    if row is None:
        work.session.execute(
            insert(u).values(
                device_serial=serial,
                day=day,
                institution_id=institution,
                exam_seconds=exam,
                telemetry_seconds=telemetry,
            )
        )
        before, after = 0.0, daily_seconds(exam, telemetry)
    else:
        before = daily_seconds(row.exam_seconds, row.telemetry_seconds)
        after = daily_seconds(row.exam_seconds + exam, row.telemetry_seconds + telemetry)
        work.session.execute(
            update(u)
            .where(u.c.device_serial == serial, u.c.day == day)
            .values(
                exam_seconds=row.exam_seconds + exam,
                telemetry_seconds=row.telemetry_seconds + telemetry,
            )
        )
    if after > before:
        grew = after - before
        work.after_commit.append(
            lambda: work.deps.metrics.scan_seconds.labels(institution).inc(grew)
        )


def _event_time(ts: Any, fallback: datetime) -> datetime:
    if ts is not None and (ts.seconds or ts.nanos):
        return aware(ts.ToDatetime()).astimezone(UTC)  # type: ignore[union-attr]
    return fallback


def record_exam_usage(work: Work, message: events_pb2.ExamCompleted, event_time: datetime) -> bool:
    """Count an exam's scan time for its probe once; return False for a repeat."""
    ctx = message.context
    if not ctx.device_serial:
        return False
    if message.scan_seconds < 0:
        raise InvalidRequest("scan_seconds must not be negative")
    key = ctx.exam_id or ctx.study_instance_uid
    if not key:
        raise InvalidRequest("ExamCompleted names neither exam_id nor study_instance_uid")
    e = orm.exam_usage
    if work.session.execute(select(e.c.exam_key).where(e.c.exam_key == key)).first():
        return False
    at = _event_time(message.completed_at, event_time)
    day = _day(work.deps, at)
    device = _device_for_event(work, ctx.device_serial, ctx.institution_id, at)
    device.observe(at)
    work.devices.save(device)
    institution = ctx.institution_id or device.holder
    work.session.execute(
        insert(e).values(
            exam_key=key,
            device_serial=device.serial,
            institution_id=institution,
            day=day,
            scan_seconds=message.scan_seconds,
        )
    )
    _add_usage(work, device.serial, institution, day, exam=message.scan_seconds)
    return True


def _fault_watermark(work: Work, serial: str) -> datetime | None:
    """Return the last repair of the device: signals from before it are history, not faults."""
    t = orm.tickets
    value = work.session.execute(
        select(func.max(t.c.resolved_at)).where(
            t.c.device_serial == serial, t.c.source != TicketSource.PREVENTIVE.value
        )
    ).scalar_one_or_none()
    return aware(value)


def record_probe_health(
    work: Work, message: events_pb2.InferenceCompleted, event_time: datetime
) -> str:
    """Record one exam's probe-health verdict; open or extend a ticket when the rule says so.

    Returns 'ignored', 'duplicate', 'recorded', 'linked' or 'opened'.
    """
    health = message.probe_health
    ctx = message.context
    serial = health.device_serial or ctx.device_serial
    rule = work.deps.config.probe_health.rule()
    if not serial or not rule.is_fault_signal(
        suspected_fault=health.suspected_fault, dead_fraction=health.dead_element_fraction
    ):
        return "ignored"
    finding_id = message.inference_id or ctx.study_instance_uid
    if not finding_id:
        raise InvalidRequest("InferenceCompleted names neither inference_id nor study")
    f = orm.probe_findings
    if work.session.execute(select(f.c.finding_id).where(f.c.finding_id == finding_id)).first():
        return "duplicate"
    at = _event_time(message.completed_at, event_time)
    device = _device_for_event(work, serial, ctx.institution_id, at)
    evidence = list(dict.fromkeys(message.derived_object_keys))
    work.session.execute(
        insert(f).values(
            finding_id=finding_id,
            device_serial=serial,
            institution_id=ctx.institution_id,
            study_instance_uid=ctx.study_instance_uid,
            observed_at=at,
            dead_element_fraction=health.dead_element_fraction,
            dead_element_columns=health.dead_element_columns,
            evidence_keys=evidence,
        )
    )
    now = _now(work.deps)
    note = (
        f"probe health: {health.dead_element_fraction:.1%} dead elements in exam "
        f"{ctx.study_instance_uid}"
    )
    open_ticket = work.tickets.open_fault_ticket(serial)
    if open_ticket is not None:
        # One open case per probe: more evidence joins it instead of opening a duplicate.
        open_ticket.add_evidence(evidence, at=now, actor=SERVICE, note=note)
        work.tickets.save(open_ticket)
        work.session.execute(
            update(f).where(f.c.finding_id == finding_id).values(ticket_id=open_ticket.id)
        )
        return "linked"
    watermark = _fault_watermark(work, serial)
    query = select(f.c.finding_id, f.c.observed_at, f.c.evidence_keys).where(
        f.c.device_serial == serial, f.c.ticket_id.is_(None)
    )
    if watermark is not None:
        query = query.where(f.c.observed_at > watermark)
    pending = work.session.execute(query).fetchall()
    if not rule.triggers([_must_aware(r.observed_at) for r in pending]):
        return "recorded"
    keys = list(dict.fromkeys(k for r in pending for k in r.evidence_keys))
    ticket = _open_ticket(
        work,
        device,
        symptom=(
            f"dead transducer elements seen in {len(pending)} exams "
            f"(latest {health.dead_element_fraction:.1%}, "
            f"{health.dead_element_columns} dark scan lines)"
        ),
        source=TicketSource.PROBE_HEALTH,
        opened_by=SERVICE,
        at=now,
        institution_id=ctx.institution_id or device.holder,
        evidence=keys,
        study_uid=ctx.study_instance_uid,
        rule="probe_health",
    )
    work.session.execute(
        update(f)
        .where(f.c.finding_id.in_([r.finding_id for r in pending]))
        .values(ticket_id=ticket.id)
    )
    return "opened"


def _must_aware(value: datetime) -> datetime:
    result = aware(value)
    assert result is not None
    return result


@dataclass(frozen=True)
class TelemetrySampleIn:
    """One telemetry reading as the app sends it."""

    recorded_at: datetime
    battery_percent: float | None = None
    temperature_c: float | None = None
    drops: int = 0
    scan_seconds: float = 0.0
    firmware_version: str = ""
    error_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TelemetryResult:
    """What a telemetry batch changed."""

    accepted: int
    duplicates: int
    opened_ticket_ids: list[str]
    replayed: bool = False


def _validate_sample(sample: TelemetrySampleIn, now: datetime) -> None:
    if sample.recorded_at.tzinfo is None:
        raise InvalidRequest("recorded_at must carry a time zone")
    if sample.recorded_at > now + timedelta(days=1):
        raise InvalidRequest(
            f"sample recorded_at {sample.recorded_at.isoformat()} is in the future"
        )
    if sample.battery_percent is not None and not 0 <= sample.battery_percent <= 100:
        raise InvalidRequest("battery_percent must be within 0..100")
    if sample.temperature_c is not None and not -40 <= sample.temperature_c <= 120:
        raise InvalidRequest("temperature must be within -40..120 °C")
    if sample.drops < 0 or sample.scan_seconds < 0:
        raise InvalidRequest("drops and scan_seconds must not be negative")
    if sample.scan_seconds > 86400:
        raise InvalidRequest("scan_seconds of one sample must not exceed a day")


def record_telemetry(
    deps: Dependencies,
    principal: Principal,
    *,
    device_serial: str,
    samples: Sequence[TelemetrySampleIn],
    batch_id: str = "",
) -> TelemetryResult:
    """Store a telemetry batch idempotently (per batch id and per sample time) and apply rules."""
    principal.require_role("operator", "physician", "engineer", "admin", "service")
    now = _now(deps)
    if not samples:
        raise InvalidRequest("a telemetry batch needs at least one sample")
    if len(samples) > deps.config.telemetry.max_samples_per_batch:
        raise InvalidRequest(
            f"at most {deps.config.telemetry.max_samples_per_batch} samples per batch"
        )
    for sample in samples:
        _validate_sample(sample, now)
    b = orm.telemetry_batches
    s = orm.telemetry_samples
    with unit(deps) as work:
        if batch_id:
            row = work.session.execute(select(b).where(b.c.batch_id == batch_id)).first()
            if row is not None:
                if row.device_serial != device_serial:
                    raise Conflict(f"batch {batch_id} was sent for device {row.device_serial}")
                return TelemetryResult(0, len(samples), list(row.opened_ticket_ids), True)
        device = _device(work, device_serial, principal)
        stored = {
            _must_aware(r)
            for r in work.session.execute(
                select(s.c.recorded_at).where(
                    s.c.device_serial == device_serial,
                    s.c.recorded_at.in_([x.recorded_at.astimezone(UTC) for x in samples]),
                )
            ).scalars()
        }
        fresh: dict[datetime, TelemetrySampleIn] = {}
        for sample in samples:
            at = sample.recorded_at.astimezone(UTC)
            if at not in stored and at not in fresh:
                fresh[at] = sample
        if fresh:
            work.session.execute(
                insert(s),
                [
                    {
                        "device_serial": device_serial,
                        "recorded_at": at,
                        "battery_percent": sample.battery_percent,
                        "temperature_c": sample.temperature_c,
                        "drops": sample.drops,
                        "scan_seconds": sample.scan_seconds,
                        "firmware_version": sample.firmware_version,
                        "error_codes": list(sample.error_codes),
                        "batch_id": batch_id,
                    }
                    for at, sample in sorted(fresh.items())
                ],
            )
        per_day: dict[date, float] = {}
        for at, sample in sorted(fresh.items()):
            device.observe(at, sample.firmware_version)
            if sample.scan_seconds:
                day = _day(deps, at)
                per_day[day] = per_day.get(day, 0.0) + sample.scan_seconds
        for day, seconds in sorted(per_day.items()):
            _add_usage(work, device_serial, device.holder, day, telemetry=seconds)
        work.devices.save(device)
        opened = _apply_telemetry_rules(work, device, list(fresh), now) if fresh else []
        if batch_id:
            work.session.execute(
                insert(b).values(
                    batch_id=batch_id,
                    device_serial=device_serial,
                    received_at=now,
                    accepted=len(fresh),
                    duplicates=len(samples) - len(fresh),
                    opened_ticket_ids=opened,
                )
            )
        audit(
            work.session,
            at=now,
            actor=principal.user,
            action="telemetry.record",
            target=device_serial,
            detail=f"{len(fresh)} new of {len(samples)}",
        )
    return TelemetryResult(len(fresh), len(samples) - len(fresh), opened)


def _apply_telemetry_rules(
    work: Work, device: Device, new_times: list[datetime], now: datetime
) -> list[str]:
    config = work.deps.config.telemetry
    rules = config.rules()
    span = max(rules.drops_window, rules.overheat_window)
    s = orm.telemetry_samples
    query = select(s.c.recorded_at, s.c.temperature_c, s.c.drops).where(
        s.c.device_serial == device.serial,
        s.c.recorded_at >= min(new_times) - span,
        s.c.recorded_at <= max(new_times) + span,
    )
    readings = [
        TelemetryReading(_must_aware(r.recorded_at), r.temperature_c, r.drops)
        for r in work.session.execute(query)
    ]
    watermark = _fault_watermark(work, device.serial)
    opened: list[str] = []
    for alarm_rule in ("drops", "overheating"):
        last = work.tickets.latest_opened_at(
            device.serial, source=TicketSource.TELEMETRY, rule=alarm_rule
        )
        since = max((t for t in (watermark, last) if t is not None), default=None)
        considered = [r for r in readings if since is None or r.recorded_at > since]
        alarms = [a for a in evaluate_telemetry(rules, considered) if a.rule == alarm_rule]
        if not alarms:
            continue
        alarm = alarms[0]
        current = work.tickets.open_fault_ticket(device.serial)
        if current is not None:
            marker = f"telemetry {alarm.rule}:"
            opened_by_rule = work.tickets.rule_of(current.id) == alarm.rule
            if not opened_by_rule and not any(c.note.startswith(marker) for c in current.history):
                current.add_evidence([], at=now, actor=SERVICE, note=f"{marker} {alarm.symptom}")
                work.tickets.save(current)
            continue
        ticket = _open_ticket(
            work,
            device,
            symptom=alarm.symptom,
            source=TicketSource.TELEMETRY,
            opened_by=SERVICE,
            at=now,
            rule=alarm.rule,
        )
        opened.append(ticket.id)
    return opened


# -- audit --------------------------------------------------------------------------------------


def read_audit(
    deps: Dependencies, principal: Principal, *, target: str = "", after: int = 0, limit: int = 100
) -> tuple[list[dict[str, Any]], int]:
    """Return a page of audit records (administrators only) and the next cursor (0 at the end)."""
    principal.require_role("admin")
    if not 1 <= limit <= 1000:
        raise InvalidRequest("page size must be between 1 and 1000")
    a = orm.audit_log
    query = select(a).where(a.c.id > after).order_by(a.c.id).limit(limit + 1)
    if target:
        query = query.where(a.c.target == target)
    with unit(deps) as work:
        rows = work.session.execute(query).fetchall()
    records = [
        {
            "id": r.id,
            "at": aware(r.at),
            "actor": r.actor,
            "action": r.action,
            "target": r.target,
            "detail": r.detail,
        }
        for r in rows[:limit]
    ]
    return records, rows[limit - 1].id if len(rows) > limit else 0


# -- utilisation and metrics ---------------------------------------------------------------------


def utilisation_report(
    deps: Dependencies, principal: Principal, *, start: date, end: date
) -> UtilisationReport:
    """Scan hours per device and centre over [start, end], idle/overloaded, suggested moves."""
    principal.require_role("admin", "coordinator", "engineer")
    if end < start:
        raise InvalidRequest("end must not be before start")
    if (end - start).days > 366:
        raise InvalidRequest("a utilisation period is at most a year")
    scope = visible_institutions(principal)
    u = orm.daily_usage
    with unit(deps) as work:
        devices = work.devices.find(institutions=scope, limit=100_000)
        rows = work.session.execute(
            select(u.c.device_serial, u.c.day, u.c.exam_seconds, u.c.telemetry_seconds).where(
                u.c.day >= start, u.c.day <= end
            )
        ).fetchall()
    by_device: dict[str, dict[date, float]] = {}
    for serial, day, exam, telemetry in rows:
        by_device.setdefault(serial, {})[day] = daily_seconds(exam, telemetry)
    usage = [
        DeviceUsage(d.serial, d.holder, by_device.get(d.serial, {}))
        for d in devices
        if d.status in (DeviceStatus.IN_SERVICE, DeviceStatus.LOANED_OUT)
    ]
    return analyse(deps.config.utilisation.policy(), usage, (end - start).days + 1)


def fleet_snapshot(deps: Dependencies) -> FleetSnapshot:
    """Read the open-ticket and availability gauges."""
    now = _now(deps)
    with unit(deps) as work:
        tickets = work.tickets.open_tickets()
        devices = work.devices.find(limit=1_000_000)
    counts: dict[tuple[str, str], int] = {}
    for ticket in tickets:
        label = (ticket.state.value, ticket.sla_status(now))
        counts[label] = counts.get(label, 0) + 1
    assigned: dict[str, int] = {}
    usable: dict[str, int] = {}
    for d in devices:
        if d.status is DeviceStatus.RETIRED:
            continue
        if not d.spare:
            assigned[d.institution_id] = assigned.get(d.institution_id, 0) + 1
            if d.status is DeviceStatus.IN_SERVICE:
                usable[d.institution_id] = usable.get(d.institution_id, 0) + 1
        elif d.status is DeviceStatus.LOANED_OUT:
            usable[d.loaned_to] = usable.get(d.loaned_to, 0) + 1
    # A loaner stands in for a probe under repair, so it counts; never above full availability.
    availability = {i: min(1.0, usable.get(i, 0) / n) for i, n in assigned.items()}
    return FleetSnapshot(counts, availability)
