"""REST /v1 for the app, engineers and administrators: translate, call a handler, render."""

from __future__ import annotations

import tempfile
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from sonobridge.common.conditional import IfNoneMatch, polled
from sonobridge.common.http import CurrentPrincipal, app_deps
from sonobridge.common.inputs import INT64_MAX
from sonobridge.common.problems import InvalidInput, PayloadTooLarge
from sonobridge.maintenance.domain.devices import DeviceStatus
from sonobridge.maintenance.domain.health import TelemetrySample
from sonobridge.maintenance.domain.tickets import Ticket, TicketState
from sonobridge.maintenance.entrypoints.bodies import (
    AssigneeIn,
    DeviceIn,
    LoanerIn,
    NoteIn,
    OperatorsIn,
    PauseIn,
    RetireIn,
    TelemetryBatchIn,
    TicketIn,
    TransferIn,
    TransitionIn,
)
from sonobridge.maintenance.entrypoints.views import (
    audit_json,
    device_history_json,
    device_json,
    history_json,
    ticket_json,
    utilisation_json,
)
from sonobridge.maintenance.handlers import (
    Dependencies,
    devices,
    fleet,
    repairs,
    telemetry,
    tickets,
)

Deps = Annotated[Dependencies, Depends(app_deps)]
router = APIRouter(prefix="/v1", tags=["maintenance"])


def _shown(deps: Dependencies, principal: CurrentPrincipal, ticket: Ticket) -> dict[str, Any]:
    return ticket_json(tickets.shown_to(deps, principal, ticket), deps.clock())


# -- devices -------------------------------------------------------------------------------


@router.post("/devices", status_code=201)
def register_device(body: DeviceIn, principal: CurrentPrincipal, deps: Deps) -> dict[str, Any]:
    """Register a probe."""
    devices.register_device(deps, principal, **body.model_dump())
    return device_json(devices.get_device(deps, principal, body.serial))


@router.get("/devices")
def list_devices(
    principal: CurrentPrincipal,
    deps: Deps,
    institution_id: str = "",
    status: DeviceStatus | None = None,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    page_token: str = "",
) -> dict[str, Any]:
    """List the devices the caller may see."""
    views, cursor = devices.list_devices(
        deps,
        principal,
        institution_id=institution_id,
        status=status,
        after=page_token,
        limit=page_size,
    )
    return {"devices": [device_json(v) for v in views], "next_page_token": cursor}


@router.get("/devices/{serial}")
def get_device(serial: str, principal: CurrentPrincipal, deps: Deps) -> dict[str, Any]:
    """Return one device."""
    return device_json(devices.get_device(deps, principal, serial))


@router.get("/devices/{serial}/history")
def device_history(serial: str, principal: CurrentPrincipal, deps: Deps) -> dict[str, Any]:
    """Return a device's history."""
    entries = devices.device_history(deps, principal, serial)
    return {"history": [device_history_json(e) for e in entries]}


@router.post("/devices/{serial}/transfers")
def transfer_device(
    serial: str, body: TransferIn, principal: CurrentPrincipal, deps: Deps
) -> dict[str, Any]:
    """Move a probe to another institution."""
    devices.transfer_device(deps, principal, serial, body.to_institution_id, body.note)
    return device_json(devices.get_device(deps, principal, serial))


@router.put("/devices/{serial}/operators")
def set_operators(
    serial: str, body: OperatorsIn, principal: CurrentPrincipal, deps: Deps
) -> dict[str, Any]:
    """Replace a probe's operators."""
    devices.set_operators(deps, principal, serial, body.operators)
    return device_json(devices.get_device(deps, principal, serial))


@router.post("/devices/{serial}/retirement")
def retire_device(
    serial: str, body: RetireIn, principal: CurrentPrincipal, deps: Deps
) -> dict[str, Any]:
    """Retire a probe."""
    devices.retire_device(deps, principal, serial, body.reason)
    return device_json(devices.get_device(deps, principal, serial))


# -- telemetry -----------------------------------------------------------------------------


@router.post("/telemetry-batches")
def record_telemetry(
    body: TelemetryBatchIn, principal: CurrentPrincipal, deps: Deps
) -> dict[str, Any]:
    """Store a telemetry batch from the app's offline buffer."""
    result = telemetry.record_telemetry(
        deps,
        principal,
        device_serial=body.device_serial,
        batch_id=body.batch_id,
        samples=[
            TelemetrySample(
                recorded_at=s.recorded_at,
                battery_percent=s.battery_percent,
                temperature_c=s.temperature_celsius,
                drops=s.drops,
                scan_seconds=s.scan_seconds,
                firmware_version=s.firmware_version,
                error_codes=tuple(s.error_codes),
            )
            for s in body.samples
        ],
    )
    return {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "opened_ticket_ids": result.opened_ticket_ids,
        "replayed": result.replayed,
    }


# -- tickets -------------------------------------------------------------------------------


@router.post("/tickets", status_code=201)
def open_ticket(
    body: TicketIn,
    principal: CurrentPrincipal,
    deps: Deps,
    response: Response,
    idempotency_key: Annotated[str, Header(alias="Idempotency-Key")] = "",
) -> dict[str, Any]:
    """Open a ticket (one-tap fault report)."""
    ticket, created = tickets.open_ticket(
        deps,
        principal,
        device_serial=body.device_serial,
        symptom=body.symptom,
        institution_id=body.institution_id,
        idempotency_key=idempotency_key,
    )
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/tickets/{ticket.id}"
    return _shown(deps, principal, ticket)


@router.get("/tickets")
def list_tickets(
    principal: CurrentPrincipal,
    deps: Deps,
    state: Annotated[list[TicketState] | None, Query()] = None,
    assignee: str = "",
    device_serial: str = "",
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    page_token: str = "",
) -> dict[str, Any]:
    """List the tickets the caller may see."""
    found, cursor = tickets.list_tickets(
        deps,
        principal,
        states=state or (),
        assignee=assignee,
        device_serial=device_serial,
        after=page_token,
        limit=page_size,
    )
    at = deps.clock()
    return {
        "tickets": [ticket_json(tickets.shown_to(deps, principal, t), at) for t in found],
        "next_page_token": cursor,
    }


@router.get("/tickets/{ticket_id}")
def get_ticket(
    ticket_id: str, principal: CurrentPrincipal, deps: Deps, if_none_match: IfNoneMatch = None
) -> Response:
    """Return one ticket; 304 when the caller's copy is current."""
    ticket = tickets.get_ticket(deps, principal, ticket_id)
    return polled(_shown(deps, principal, ticket), if_none_match)


@router.get("/tickets/{ticket_id}/history")
def ticket_history(ticket_id: str, principal: CurrentPrincipal, deps: Deps) -> dict[str, Any]:
    """Return a ticket's history."""
    ticket = tickets.get_ticket(deps, principal, ticket_id)
    return {"history": history_json(tickets.shown_to(deps, principal, ticket))}


@router.post("/tickets/{ticket_id}/transitions")
def transition(
    ticket_id: str, body: TransitionIn, principal: CurrentPrincipal, deps: Deps
) -> dict[str, Any]:
    """Move a ticket to another state."""
    ticket = repairs.transition_ticket(deps, principal, ticket_id, body.to, body.note)
    return _shown(deps, principal, ticket)


@router.post("/tickets/{ticket_id}/pause")
def pause(ticket_id: str, body: PauseIn, principal: CurrentPrincipal, deps: Deps) -> dict[str, Any]:
    """Stop a ticket's SLA clocks."""
    return _shown(deps, principal, repairs.pause_ticket(deps, principal, ticket_id, body.reason))


@router.post("/tickets/{ticket_id}/resume")
def resume(ticket_id: str, body: NoteIn, principal: CurrentPrincipal, deps: Deps) -> dict[str, Any]:
    """Restart a ticket's SLA clocks."""
    return _shown(deps, principal, repairs.resume_ticket(deps, principal, ticket_id, body.note))


@router.put("/tickets/{ticket_id}/assignee")
def reassign(
    ticket_id: str, body: AssigneeIn, principal: CurrentPrincipal, deps: Deps
) -> dict[str, Any]:
    """Hand a ticket to another engineer."""
    ticket = repairs.reassign_ticket(deps, principal, ticket_id, body.engineer, body.note)
    return _shown(deps, principal, ticket)


@router.put("/tickets/{ticket_id}/loaner")
def lend(ticket_id: str, body: LoanerIn, principal: CurrentPrincipal, deps: Deps) -> dict[str, Any]:
    """Lend a spare probe for the ticket."""
    ticket = repairs.lend_loaner(deps, principal, ticket_id, body.device_serial)
    return _shown(deps, principal, ticket)


@router.delete("/tickets/{ticket_id}/loaner")
def take_back(ticket_id: str, principal: CurrentPrincipal, deps: Deps) -> dict[str, Any]:
    """Take the ticket's loaner back."""
    return _shown(deps, principal, repairs.return_loaner(deps, principal, ticket_id))


@router.post("/tickets/{ticket_id}/photos", status_code=201)
async def attach_photo(
    ticket_id: str, request: Request, principal: CurrentPrincipal, deps: Deps
) -> dict[str, Any]:
    """Attach a photo of the fault to a ticket."""
    max_photo = deps.config.max_photo_bytes
    content_type = request.headers.get("content-type", "")
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > max_photo:
        raise PayloadTooLarge(f"photos are limited to {max_photo} bytes")
    # Spooled: small photos stay in memory, big ones go to disk; never the whole body twice.
    with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as spool:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_photo:
                raise PayloadTooLarge(f"photos are limited to {max_photo} bytes")
            spool.write(chunk)
        if size == 0:
            raise InvalidInput("the photo body is empty")
        spool.seek(0)
        key = await run_in_threadpool(
            tickets.attach_photo,
            deps,
            principal,
            ticket_id,
            spool,  # type: ignore[arg-type]
            content_type=content_type,
            length=size,
        )
    return {"object_key": key, "size_bytes": size}


# -- audit and utilisation -----------------------------------------------------------------


@router.get("/audit")
def audit(
    principal: CurrentPrincipal,
    deps: Deps,
    target: str = "",
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    page_token: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> dict[str, Any]:
    """Return a page of the audit trail (administrators only)."""
    records, cursor = fleet.read_audit(
        deps, principal, target=target, after=page_token, limit=page_size
    )
    return {"records": [audit_json(r) for r in records], "next_page_token": cursor or None}


@router.get("/utilisation")
def utilisation(principal: CurrentPrincipal, deps: Deps, start: date, end: date) -> dict[str, Any]:
    """Return scan hours, idle and overloaded devices and suggested moves over a period."""
    return utilisation_json(fleet.utilisation_report(deps, principal, start=start, end=end))
