"""REST /v1 for the app, engineers and administrators: translate, call a handler, render."""

from __future__ import annotations

import hashlib
import tempfile
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from sonobridge.common.http import CurrentPrincipal
from sonobridge.common.inputs import INT64_MAX, Instant, Int32
from sonobridge.common.problems import InvalidInput, PayloadTooLarge
from sonobridge.maintenance import handlers
from sonobridge.maintenance.domain.devices import DeviceStatus
from sonobridge.maintenance.domain.tickets import Ticket, TicketState
from sonobridge.maintenance.domain.utilisation import UtilisationReport


class DeviceIn(BaseModel):
    """A probe to register."""

    serial: str = Field(min_length=1, max_length=128)
    model: str = Field(min_length=1, max_length=128)
    institution_id: str = Field(min_length=1, max_length=128)
    manufacturer: str = Field("", max_length=128)
    firmware_version: str = Field("", max_length=64)
    spare: bool = False
    operators: list[str] = []


class TransferIn(BaseModel):
    """Move a probe to another institution."""

    to_institution_id: str = Field(min_length=1, max_length=128)
    note: str = Field("", max_length=2000)


class OperatorsIn(BaseModel):
    """The operators assigned to a probe."""

    operators: list[str]


class RetireIn(BaseModel):
    """Why a probe leaves the fleet."""

    reason: str = Field(min_length=1, max_length=2000)


class TicketIn(BaseModel):
    """A one-tap fault report."""

    device_serial: str = Field(min_length=1, max_length=128)
    symptom: str = Field(min_length=1, max_length=2000)
    institution_id: str = Field("", max_length=128)


class TransitionIn(BaseModel):
    """Move a ticket to another state."""

    to: TicketState
    note: str = Field("", max_length=2000)


class PauseIn(BaseModel):
    """Stop the SLA clocks."""

    reason: str = Field(min_length=1, max_length=2000)


class NoteIn(BaseModel):
    """An optional note."""

    note: str = Field("", max_length=2000)


class AssigneeIn(BaseModel):
    """Hand a ticket to another engineer."""

    engineer: str = Field(min_length=1, max_length=128)
    note: str = Field("", max_length=2000)


class LoanerIn(BaseModel):
    """The spare to lend."""

    device_serial: str = Field(min_length=1, max_length=128)


class SampleIn(BaseModel):
    """One telemetry reading."""

    recorded_at: Instant
    battery_percent: float | None = None
    temperature_celsius: float | None = None
    drops: Int32 = 0
    scan_seconds: float = 0.0
    firmware_version: str = Field("", max_length=64)
    error_codes: list[str] = []


class TelemetryBatchIn(BaseModel):
    """A batch of readings from the app's offline buffer."""

    batch_id: str = Field(min_length=1, max_length=128)
    device_serial: str = Field(min_length=1, max_length=128)
    samples: list[SampleIn] = Field(min_length=1)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def ticket_json(ticket: Ticket, now: datetime) -> dict[str, Any]:
    """Render a ticket with its SLA figures."""
    ack = ticket.time_to_acknowledge()
    onsite = ticket.time_to_onsite()
    return {
        "ticket_id": ticket.id,
        "device_serial": ticket.device_serial,
        "institution_id": ticket.institution_id,
        "symptom": ticket.symptom,
        "source": ticket.source.value,
        "state": ticket.state.value,
        "assignee": ticket.assignee,
        "region": ticket.region,
        "opened_by": ticket.opened_by,
        "evidence_object_keys": ticket.evidence_keys,
        "study_instance_uid": ticket.study_instance_uid,
        "opened_at": _iso(ticket.opened_at),
        "acknowledged_at": _iso(ticket.acknowledged_at),
        "dispatched_at": _iso(ticket.dispatched_at),
        "on_site_at": _iso(ticket.on_site_at),
        "resolved_at": _iso(ticket.resolved_at),
        "closed_at": _iso(ticket.closed_at),
        "cancelled_at": _iso(ticket.cancelled_at),
        "updated_at": _iso(ticket.updated_at),
        "loaner_device_serial": ticket.loaner_serial,
        "sla": {
            "ack_due_at": _iso(ticket.ack_due_at(now)),
            "onsite_due_at": _iso(ticket.onsite_due_at(now)),
            "paused": ticket.paused,
            "paused_seconds": ticket.paused_total(now).total_seconds(),
            "time_to_acknowledge_seconds": ack.total_seconds() if ack else None,
            "time_to_onsite_seconds": onsite.total_seconds() if onsite else None,
            "ack_breached": ticket.ack_breached,
            "onsite_breached": ticket.onsite_breached,
            "status": ticket.sla_status(now),
        },
    }


def history_json(ticket: Ticket) -> list[dict[str, Any]]:
    """Render the append-only history."""
    return [
        {
            "at": c.at.isoformat(),
            "actor": c.actor,
            "kind": c.kind,
            "from_state": c.from_state.value,
            "to_state": c.to_state.value,
            "assignee": c.assignee,
            "note": c.note,
        }
        for c in ticket.history
    ]


def device_json(view: handlers.DeviceView) -> dict[str, Any]:
    """Render a device."""
    d = view.device
    return {
        "serial": d.serial,
        "model": d.model,
        "manufacturer": d.manufacturer,
        "institution_id": d.institution_id,
        "status": d.status.value,
        "firmware_version": d.firmware_version,
        "spare": d.spare,
        "loaned_to_institution_id": d.loaned_to,
        "operators": d.operators,
        "last_seen_at": _iso(d.last_seen_at),
        "open_ticket_id": view.open_ticket_id,
        "scan_hours_7d": round(view.scan_seconds_7d / 3600, 3),
    }


def utilisation_json(report: UtilisationReport) -> dict[str, Any]:
    """Render a utilisation report."""
    return {
        "days": report.days,
        "devices": [
            {
                "serial": d.serial,
                "institution_id": d.institution_id,
                "scan_hours": round(d.scan_hours, 3),
                "hours_per_day": round(d.hours_per_day, 3),
                "band": d.band,
            }
            for d in report.devices
        ],
        "centres": [
            {
                "institution_id": c.institution_id,
                "devices": c.devices,
                "scan_hours": round(c.scan_hours, 3),
                "hours_per_device_day": round(c.hours_per_device_day, 3),
                "band": c.band,
            }
            for c in report.centres
        ],
        "idle_devices": [d.serial for d in report.idle],
        "overloaded_devices": [d.serial for d in report.overloaded],
        "suggested_moves": [
            {
                "device_serial": m.serial,
                "from_institution_id": m.from_institution,
                "to_institution_id": m.to_institution,
                "reason": m.reason,
            }
            for m in report.moves
        ],
    }


def _etag(ticket: Ticket) -> str:
    stamp = f"{ticket.id}|{ticket.updated_at}|{ticket.state}|{len(ticket.history)}"
    return '"' + hashlib.sha256(stamp.encode()).hexdigest()[:32] + '"'


def build_router(deps: handlers.Dependencies) -> APIRouter:
    """Return the /v1 routes bound to the service's dependencies."""
    router = APIRouter(prefix="/v1", tags=["maintenance"])
    max_photo = deps.config.max_photo_bytes

    def now() -> datetime:
        return deps.clock()

    # -- devices ---------------------------------------------------------------------------

    @router.post("/devices", status_code=201)
    def register_device(body: DeviceIn, principal: CurrentPrincipal) -> dict[str, Any]:
        handlers.register_device(deps, principal, **body.model_dump())
        return device_json(handlers.get_device(deps, principal, body.serial))

    @router.get("/devices")
    def list_devices(
        principal: CurrentPrincipal,
        institution_id: str = "",
        status: DeviceStatus | None = None,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
        page_token: str = "",
    ) -> dict[str, Any]:
        views, cursor = handlers.list_devices(
            deps,
            principal,
            institution_id=institution_id,
            status=status,
            after=page_token,
            limit=page_size,
        )
        return {"devices": [device_json(v) for v in views], "next_page_token": cursor}

    @router.get("/devices/{serial}")
    def get_device(serial: str, principal: CurrentPrincipal) -> dict[str, Any]:
        return device_json(handlers.get_device(deps, principal, serial))

    @router.get("/devices/{serial}/history")
    def device_history(serial: str, principal: CurrentPrincipal) -> dict[str, Any]:
        entries = handlers.device_history(deps, principal, serial)
        return {"history": [{**e, "at": _iso(e["at"])} for e in entries]}

    @router.post("/devices/{serial}/transfers")
    def transfer_device(
        serial: str, body: TransferIn, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        handlers.transfer_device(deps, principal, serial, body.to_institution_id, body.note)
        return device_json(handlers.get_device(deps, principal, serial))

    @router.put("/devices/{serial}/operators")
    def set_operators(
        serial: str, body: OperatorsIn, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        handlers.set_operators(deps, principal, serial, body.operators)
        return device_json(handlers.get_device(deps, principal, serial))

    @router.post("/devices/{serial}/retirement")
    def retire_device(serial: str, body: RetireIn, principal: CurrentPrincipal) -> dict[str, Any]:
        handlers.retire_device(deps, principal, serial, body.reason)
        return device_json(handlers.get_device(deps, principal, serial))

    # -- telemetry -------------------------------------------------------------------------

    @router.post("/telemetry-batches")
    def record_telemetry(body: TelemetryBatchIn, principal: CurrentPrincipal) -> dict[str, Any]:
        result = handlers.record_telemetry(
            deps,
            principal,
            device_serial=body.device_serial,
            batch_id=body.batch_id,
            samples=[
                handlers.TelemetrySampleIn(
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

    # -- tickets ---------------------------------------------------------------------------

    @router.post("/tickets", status_code=201)
    def open_ticket(
        body: TicketIn,
        principal: CurrentPrincipal,
        response: Response,
        idempotency_key: Annotated[str, Header(alias="Idempotency-Key")] = "",
    ) -> dict[str, Any]:
        ticket, created = handlers.open_ticket(
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
        return ticket_json(handlers.shown_to(deps, principal, ticket), now())

    @router.get("/tickets")
    def list_tickets(
        principal: CurrentPrincipal,
        state: Annotated[list[TicketState] | None, Query()] = None,
        assignee: str = "",
        device_serial: str = "",
        page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
        page_token: str = "",
    ) -> dict[str, Any]:
        found, cursor = handlers.list_tickets(
            deps,
            principal,
            states=state or (),
            assignee=assignee,
            device_serial=device_serial,
            after=page_token,
            limit=page_size,
        )
        at = now()
        return {
            "tickets": [ticket_json(handlers.shown_to(deps, principal, t), at) for t in found],
            "next_page_token": cursor,
        }

    @router.get("/tickets/{ticket_id}")
    def get_ticket(
        ticket_id: str,
        principal: CurrentPrincipal,
        response: Response,
        if_none_match: Annotated[str, Header(alias="If-None-Match")] = "",
    ) -> Any:
        ticket = handlers.get_ticket(deps, principal, ticket_id)
        tag = _etag(ticket)
        if if_none_match == tag:
            return Response(status_code=304, headers={"ETag": tag})
        response.headers["ETag"] = tag
        return ticket_json(handlers.shown_to(deps, principal, ticket), now())

    @router.get("/tickets/{ticket_id}/history")
    def ticket_history(ticket_id: str, principal: CurrentPrincipal) -> dict[str, Any]:
        ticket = handlers.get_ticket(deps, principal, ticket_id)
        return {"history": history_json(handlers.shown_to(deps, principal, ticket))}

    @router.post("/tickets/{ticket_id}/transitions")
    def transition(
        ticket_id: str, body: TransitionIn, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        ticket = handlers.transition_ticket(deps, principal, ticket_id, body.to, body.note)
        return ticket_json(handlers.shown_to(deps, principal, ticket), now())

    @router.post("/tickets/{ticket_id}/pause")
    def pause(ticket_id: str, body: PauseIn, principal: CurrentPrincipal) -> dict[str, Any]:
        return ticket_json(
            handlers.shown_to(
                deps, principal, handlers.pause_ticket(deps, principal, ticket_id, body.reason)
            ),
            now(),
        )

    @router.post("/tickets/{ticket_id}/resume")
    def resume(ticket_id: str, body: NoteIn, principal: CurrentPrincipal) -> dict[str, Any]:
        return ticket_json(
            handlers.shown_to(
                deps, principal, handlers.resume_ticket(deps, principal, ticket_id, body.note)
            ),
            now(),
        )

    @router.put("/tickets/{ticket_id}/assignee")
    def reassign(ticket_id: str, body: AssigneeIn, principal: CurrentPrincipal) -> dict[str, Any]:
        ticket = handlers.reassign_ticket(deps, principal, ticket_id, body.engineer, body.note)
        return ticket_json(handlers.shown_to(deps, principal, ticket), now())

    @router.put("/tickets/{ticket_id}/loaner")
    def lend(ticket_id: str, body: LoanerIn, principal: CurrentPrincipal) -> dict[str, Any]:
        ticket = handlers.lend_loaner(deps, principal, ticket_id, body.device_serial)
        return ticket_json(handlers.shown_to(deps, principal, ticket), now())

    @router.delete("/tickets/{ticket_id}/loaner")
    def take_back(ticket_id: str, principal: CurrentPrincipal) -> dict[str, Any]:
        return ticket_json(
            handlers.shown_to(deps, principal, handlers.return_loaner(deps, principal, ticket_id)),
            now(),
        )

    @router.post("/tickets/{ticket_id}/photos", status_code=201)
    async def attach_photo(
        ticket_id: str, request: Request, principal: CurrentPrincipal
    ) -> dict[str, Any]:
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
                handlers.attach_photo,
                deps,
                principal,
                ticket_id,
                spool,  # type: ignore[arg-type]
                content_type=content_type,
                length=size,
            )
        return {"object_key": key, "size_bytes": size}

    # -- audit -----------------------------------------------------------------------------

    @router.get("/audit")
    def audit(
        principal: CurrentPrincipal,
        target: str = "",
        page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
        page_token: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
    ) -> dict[str, Any]:
        records, cursor = handlers.read_audit(
            deps, principal, target=target, after=page_token, limit=page_size
        )
        return {
            "records": [{**r, "at": _iso(r["at"])} for r in records],
            "next_page_token": cursor or None,
        }

    # -- utilisation -----------------------------------------------------------------------

    @router.get("/utilisation")
    def utilisation(principal: CurrentPrincipal, start: date, end: date) -> dict[str, Any]:
        return utilisation_json(handlers.utilisation_report(deps, principal, start=start, end=end))

    return router
