"""Who may see which device or ticket, and loading one with a 404 when it is out of reach."""

from __future__ import annotations

from sonobridge.common.auth import Principal
from sonobridge.common.problems import Forbidden, NotFound
from sonobridge.maintenance.domain.devices import Device
from sonobridge.maintenance.domain.tickets import Ticket
from sonobridge.maintenance.ports import UnitOfWork

FLEET_WIDE_ROLES = ("engineer", "admin", "service")


def visible_institutions(principal: Principal) -> list[str] | None:
    """Return the institutions the caller may see, or None for the whole consortium."""
    if principal.has_role(*FLEET_WIDE_ROLES):
        return None
    if not principal.institution:
        raise Forbidden("token carries no institution")
    return [principal.institution]


def require_device_visible(principal: Principal, device: Device) -> None:
    """Answer 404, not 403, for a device outside the caller's institutions."""
    scope = visible_institutions(principal)
    if scope is not None and device.institution_id not in scope and device.loaned_to not in scope:
        raise NotFound(f"device {device.serial} not found")


def require_ticket_visible(principal: Principal, ticket: Ticket) -> None:
    """Answer 404, not 403, for a ticket outside the caller's institutions."""
    scope = visible_institutions(principal)
    if scope is not None and ticket.institution_id not in scope:
        raise NotFound(f"ticket {ticket.id} not found")


def device(
    work: UnitOfWork, serial: str, principal: Principal | None = None, *, lock: bool = True
) -> Device:
    """Return the device (locked for change unless `lock` is False), or raise NotFound."""
    found = work.devices.get(serial, lock=lock)
    if found is None:
        raise NotFound(f"device {serial} not found")
    if principal is not None:
        require_device_visible(principal, found)
    return found


def ticket(
    work: UnitOfWork, ticket_id: str, principal: Principal | None = None, *, lock: bool = True
) -> Ticket:
    """Return the ticket (locked for change unless `lock` is False), or raise NotFound."""
    found = work.tickets.get(ticket_id, lock=lock)
    if found is None:
        raise NotFound(f"ticket {ticket_id} not found")
    if principal is not None:
        require_ticket_visible(principal, found)
    return found
