"""Ticket use cases of reporters: open (one tap), attach a photo, read and list."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import BinaryIO

from sonobridge.common.access import Action
from sonobridge.common.auth import Principal
from sonobridge.common.idempotency import Body, create_once, request_key
from sonobridge.common.paging import split_page
from sonobridge.common.problems import Conflict, Forbidden, NotFound
from sonobridge.maintenance.domain.devices import DeviceStatus
from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.tickets import Ticket, TicketSource, TicketState
from sonobridge.maintenance.handlers import Dependencies, scope
from sonobridge.maintenance.handlers.lifecycle import open_ticket_for
from sonobridge.maintenance.ports import UnitOfWork

PHOTO_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
# Study UIDs in history notes ("dead elements in exam 1.2.840...").
_UID_TEXT = re.compile(r"\b[0-9]+(?:\.[0-9]+){3,}\b")


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
    now = deps.now()
    key = request_key(
        idempotency_key or None,
        "POST",
        "/v1/tickets",
        {
            "device_serial": device_serial,
            "symptom": symptom,
            "institution_id": institution_id,
            "source": source.value,
            "evidence_keys": list(evidence_keys),
            "opened_by": opened_by,
        },
    )
    opened: list[Ticket] = []

    def open_in(work: UnitOfWork) -> Body:
        device = scope.device(work, device_serial, principal)
        if device.status is DeviceStatus.RETIRED:
            raise Conflict(f"device {device_serial} is retired")
        if institution_id and institution_id not in (device.institution_id, device.loaned_to):
            raise InvalidRequest(f"device {device_serial} is not at institution {institution_id}")
        visible = scope.visible_institutions(principal)
        if visible is not None and institution_id and institution_id not in visible:
            raise Forbidden(f"institution {institution_id} is outside your scope")
        ticket = open_ticket_for(
            deps,
            work,
            device,
            symptom=symptom,
            source=source,
            opened_by=opened_by or principal.user,
            at=now,
            institution_id=institution_id,
            evidence=evidence_keys,
        )
        opened.append(ticket)
        return {"ticket_id": ticket.id}

    outcome = create_once(deps.units, owner=principal.user, key=key, work=open_in, at=now)
    if not outcome.replayed:
        return opened[0], True
    # A retry answers with the ticket as it is now, as before keys were fingerprinted.
    with deps.units() as work:
        return scope.ticket(work, str(outcome.body["ticket_id"]), principal), False


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
    with deps.units() as work:
        scope.ticket(work, ticket_id, principal)
    key = f"maintenance/tickets/{ticket_id}/{uuid.uuid4().hex}.{extension}"
    deps.store.put(
        key,
        stream,
        length=length,
        content_type=content_type,
        metadata={"ticket": ticket_id, "uploaded-by": principal.user},
    )
    now = deps.now()
    with deps.units() as work:
        ticket = scope.ticket(work, ticket_id, principal)
        ticket.add_evidence([key], at=now, actor=principal.user, note="photo attached")
        work.tickets.save(ticket)
        work.audit.write(
            at=now, actor=principal.user, action="ticket.photo", target=ticket_id, detail=key
        )
    return key


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
    with deps.units() as work:
        return scope.ticket(work, ticket_id, principal, lock=False)


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
    with deps.units() as work:
        found = work.tickets.find(
            institutions=scope.visible_institutions(principal),
            states=states,
            assignee=assignee,
            device_serial=device_serial,
            after=after,
            limit=limit + 1,
        )
    page, last = split_page(found, limit)
    return page, last.id if last else ""
