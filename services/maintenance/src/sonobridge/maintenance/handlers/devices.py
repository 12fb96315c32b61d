"""Device use cases: register, transfer, assign operators, retire, and read the fleet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sonobridge.common.auth import Principal
from sonobridge.common.paging import split_page
from sonobridge.common.problems import Conflict, Forbidden
from sonobridge.maintenance.domain.devices import (
    Device,
    DeviceHistoryEntry,
    DeviceStatus,
    StatusChange,
)
from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.preventive import schedules_for
from sonobridge.maintenance.handlers import SERVICE, Dependencies, scope
from sonobridge.maintenance.ports import UnitOfWork


@dataclass(frozen=True)
class DeviceView:
    """A device with what callers usually want next to it."""

    device: Device
    open_ticket_id: str
    scan_seconds_7d: float


def announce_status(work: UnitOfWork, change: StatusChange | None, actor: str) -> None:
    """Record a status change in the device's history and announce it."""
    if change is None:
        return
    work.devices.record(
        change.serial,
        DeviceHistoryEntry(
            at=change.at,
            kind="status",
            actor=actor,
            from_value=change.from_status.value,
            to_value=change.to_status.value,
            note=change.reason,
            ticket_id=change.ticket_id,
        ),
    )
    work.events.device_status_changed(change)


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
    now = deps.now()
    # Look up the serial as it will be stored: "X\x1d" and "X" are one device, not a 500.
    serial = serial.strip()
    if not serial or not model.strip():
        raise InvalidRequest("serial and model must not be empty")
    with deps.units() as work:
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
        work.devices.add(device)
        work.devices.record(
            serial,
            DeviceHistoryEntry(
                at=now, kind="registered", actor=principal.user, to_value=device.institution_id
            ),
        )
        for schedule in schedules_for(deps.config.schedules(), device.model):
            work.preventive.schedule(serial, schedule.kind, schedule.next_due(now))
        work.audit.write(at=now, actor=principal.user, action="device.register", target=serial)
    return device


def device_for_event(work: UnitOfWork, serial: str, institution: str, at: datetime) -> Device:
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
            DeviceHistoryEntry(
                at=at,
                kind="registered",
                actor=SERVICE,
                to_value=institution,
                note="registered automatically from an event",
            ),
        )
    return device


def transfer_device(
    deps: Dependencies, principal: Principal, serial: str, to_institution: str, note: str = ""
) -> Device:
    """Move a probe's home to another institution, keeping the history."""
    principal.require_role("admin")
    now = deps.now()
    with deps.units() as work:
        device = scope.device(work, serial)
        previous = device.transfer(to_institution.strip())
        work.devices.save(device)
        work.devices.record(
            serial,
            DeviceHistoryEntry(
                at=now,
                kind="transfer",
                actor=principal.user,
                from_value=previous,
                to_value=device.institution_id,
                note=note,
            ),
        )
        work.audit.write(
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
    now = deps.now()
    with deps.units() as work:
        device = scope.device(work, serial)
        before = ",".join(device.operators)
        device.operators = list(dict.fromkeys(o.strip() for o in operators if o.strip()))
        work.devices.save(device)
        work.devices.record(
            serial,
            DeviceHistoryEntry(
                at=now,
                kind="operators",
                actor=principal.user,
                from_value=before[:128],
                to_value=",".join(device.operators)[:128],
            ),
        )
        work.audit.write(at=now, actor=principal.user, action="device.operators", target=serial)
    return device


def retire_device(deps: Dependencies, principal: Principal, serial: str, reason: str) -> Device:
    """Take a probe out of the fleet for good."""
    principal.require_role("admin")
    now = deps.now()
    with deps.units() as work:
        device = scope.device(work, serial)
        if work.tickets.open_for_device(serial):
            raise Conflict(f"device {serial} has open tickets; close or cancel them first")
        if device.status is DeviceStatus.LOANED_OUT:
            raise Conflict(f"device {serial} is on loan; take it back first")
        change = device.set_status(DeviceStatus.RETIRED, at=now, reason=reason or "retired")
        work.devices.save(device)
        announce_status(work, change, principal.user)
        work.audit.write(at=now, actor=principal.user, action="device.retire", target=serial)
    return device


def _view(deps: Dependencies, work: UnitOfWork, device: Device, now: datetime) -> DeviceView:
    ticket = work.tickets.open_fault_ticket(device.serial)
    since = deps.day(now) - timedelta(days=6)
    seconds = sum(u.seconds for u in work.usage.days(since, serial=device.serial))
    return DeviceView(device, ticket.id if ticket else "", seconds)


def get_device(deps: Dependencies, principal: Principal, serial: str) -> DeviceView:
    """Return one device the caller may see."""
    with deps.units() as work:
        device = scope.device(work, serial, principal, lock=False)
        return _view(deps, work, device, deps.now())


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
    visible = scope.visible_institutions(principal)
    if institution_id:
        if visible is not None and institution_id not in visible:
            raise Forbidden(f"institution {institution_id} is outside your scope")
        visible = [institution_id]
    with deps.units() as work:
        found = work.devices.find(institutions=visible, status=status, after=after, limit=limit + 1)
        now = deps.now()
        page, last = split_page(found, limit)
        views = [_view(deps, work, d, now) for d in page]
    return views, last.serial if last else ""


def device_history(
    deps: Dependencies, principal: Principal, serial: str
) -> list[DeviceHistoryEntry]:
    """Return a device's registrations, transfers and status changes."""
    with deps.units() as work:
        scope.device(work, serial, principal, lock=False)  # NotFound unless visible
        return work.devices.history(serial)
