"""Ticket use cases of engineers and administrators: move, pause, reassign, lend a loaner."""

from __future__ import annotations

from sonobridge.common.auth import Principal
from sonobridge.common.problems import Forbidden
from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.tickets import Ticket, TicketState
from sonobridge.maintenance.handlers import Dependencies, scope
from sonobridge.maintenance.handlers.devices import announce_status
from sonobridge.maintenance.handlers.lifecycle import after_change


def _may_work_on(principal: Principal, ticket: Ticket) -> None:
    if principal.has_role("admin"):
        return
    if not principal.has_role("engineer"):
        raise Forbidden("only engineers and administrators work tickets")
    if ticket.assignee and ticket.assignee != principal.user:
        raise Forbidden(f"ticket {ticket.id} is assigned to {ticket.assignee}")


def transition_ticket(
    deps: Dependencies, principal: Principal, ticket_id: str, to: TicketState, note: str = ""
) -> Ticket:
    """Move a ticket along its lifecycle.

    Engineers acknowledge, dispatch, arrive and resolve; the reporting centre (or an
    administrator) closes a resolved ticket; the reporter or an administrator cancels.
    """
    now = deps.now()
    with deps.units() as work:
        ticket = scope.ticket(work, ticket_id, principal)
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
        after_change(deps, work, ticket, before, principal.user, note, now)
        work.audit.write(
            at=now, actor=principal.user, action=f"ticket.{to.value}", target=ticket_id, detail=note
        )
    return ticket


def pause_ticket(deps: Dependencies, principal: Principal, ticket_id: str, reason: str) -> Ticket:
    """Stop the SLA clocks (waiting for parts or site access)."""
    now = deps.now()
    with deps.units() as work:
        ticket = scope.ticket(work, ticket_id, principal)
        _may_work_on(principal, ticket)
        ticket.pause(at=now, actor=principal.user, reason=reason)
        after_change(deps, work, ticket, ticket.state, principal.user, f"paused: {reason}", now)
        work.audit.write(
            at=now, actor=principal.user, action="ticket.pause", target=ticket_id, detail=reason
        )
    return ticket


def resume_ticket(
    deps: Dependencies, principal: Principal, ticket_id: str, note: str = ""
) -> Ticket:
    """Restart the SLA clocks."""
    now = deps.now()
    with deps.units() as work:
        ticket = scope.ticket(work, ticket_id, principal)
        _may_work_on(principal, ticket)
        ticket.resume(at=now, actor=principal.user, note=note)
        after_change(deps, work, ticket, ticket.state, principal.user, note or "resumed", now)
        work.audit.write(at=now, actor=principal.user, action="ticket.resume", target=ticket_id)
    return ticket


def reassign_ticket(
    deps: Dependencies, principal: Principal, ticket_id: str, engineer: str, note: str = ""
) -> Ticket:
    """Hand a ticket to another engineer; the SLA clocks keep running (see Ticket.reassign)."""
    principal.require_role("admin")
    now = deps.now()
    with deps.units() as work:
        ticket = scope.ticket(work, ticket_id, principal)
        before = ticket.state
        ticket.reassign(engineer.strip(), at=now, actor=principal.user, note=note)
        after_change(deps, work, ticket, before, principal.user, ticket.history[-1].note, now)
        work.audit.write(
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
    now = deps.now()
    with deps.units() as work:
        ticket = scope.ticket(work, ticket_id, principal)
        loaner = scope.device(work, loaner_serial)
        if loaner.serial == ticket.device_serial:
            raise InvalidRequest("a device cannot be its own loaner")
        ticket.lend_loaner(loaner.serial, at=now, actor=principal.user)
        change = loaner.lend_to(ticket.institution_id, at=now, ticket_id=ticket.id)
        work.devices.save(loaner)
        announce_status(work, change, principal.user)
        note = f"loaner {loaner.serial} lent"
        after_change(deps, work, ticket, ticket.state, principal.user, note, now)
        work.audit.write(
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
    now = deps.now()
    with deps.units() as work:
        ticket = scope.ticket(work, ticket_id, principal)
        serial = ticket.take_back_loaner(at=now, actor=principal.user)
        loaner = scope.device(work, serial)
        change = loaner.take_back(at=now, ticket_id=ticket.id)
        work.devices.save(loaner)
        announce_status(work, change, principal.user)
        note = f"loaner {serial} returned"
        after_change(deps, work, ticket, ticket.state, principal.user, note, now)
        work.audit.write(at=now, actor=principal.user, action="loaner.return", target=serial)
    return ticket
