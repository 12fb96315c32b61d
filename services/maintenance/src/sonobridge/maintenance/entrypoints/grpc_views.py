"""The gRPC shapes of tickets and devices, and the contract's enums read from requests."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Any, TypeVar

from google.protobuf.duration_pb2 import Duration

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.maintenance.v1 import maintenance_pb2
from sonobridge.common.timestamps import set_times, timestamp
from sonobridge.maintenance.domain.devices import DeviceStatus
from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.tickets import Ticket, TicketSource
from sonobridge.maintenance.handlers.devices import DeviceView

# The contract names each enum value PREFIX_<domain member name>, so one lookup serves both ways.
_SOURCE = "TICKET_SOURCE_"
_STATE = "TICKET_STATE_"
_STATUS = "DEVICE_STATUS_"
E = TypeVar("E", bound=Enum)


def duration(value: timedelta) -> Duration:
    """Return a protobuf Duration."""
    d = Duration()
    d.FromTimedelta(value)
    return d


def source_of(value: int) -> TicketSource:
    """Return the ticket source a request names (APP when unset)."""
    if value == events_pb2.TICKET_SOURCE_UNSPECIFIED:
        return TicketSource.APP
    return _member(TicketSource, events_pb2.TicketSource, value, _SOURCE, "source")


def status_of(value: int) -> DeviceStatus | None:
    """Return the device status a request filters on (None when unset)."""
    if value == events_pb2.DEVICE_STATUS_UNSPECIFIED:
        return None
    return _member(DeviceStatus, events_pb2.DeviceStatus, value, _STATUS, "status")


def _member(domain: type[E], contract: Any, value: int, prefix: str, what: str) -> E:
    # proto3 enums are open: any number arrives, not only the ones the contract names.
    try:
        return domain[str(contract.Name(value)).removeprefix(prefix)]
    except (ValueError, KeyError):
        raise InvalidRequest(f"{what} {value} is not one this service knows") from None


def _pb(contract: Any, prefix: str, member: Enum) -> Any:
    # The generated enum wrappers return plain ints; the message constructors accept them.
    return contract.Value(prefix + member.name)


def ticket_pb(ticket: Ticket, now: datetime) -> maintenance_pb2.Ticket:
    """Return the gRPC view of a ticket."""
    msg = maintenance_pb2.Ticket(
        ticket_id=ticket.id,
        device_serial=ticket.device_serial,
        institution_id=ticket.institution_id,
        symptom=ticket.symptom,
        source=_pb(events_pb2.TicketSource, _SOURCE, ticket.source),
        state=_pb(events_pb2.TicketState, _STATE, ticket.state),
        assignee=ticket.assignee,
        opened_by=ticket.opened_by,
        evidence_object_keys=ticket.evidence_keys,
        opened_at=timestamp(ticket.opened_at),
        ack_due_at=timestamp(ticket.ack_due_at(now)),
        onsite_due_at=timestamp(ticket.onsite_due_at(now)),
        paused=ticket.paused,
        paused_total=duration(ticket.paused_total(now)),
        ack_sla_breached=ticket.ack_breached,
        onsite_sla_breached=ticket.onsite_breached,
        loaner_device_serial=ticket.loaner_serial,
    )
    set_times(
        msg,
        acknowledged_at=ticket.acknowledged_at,
        on_site_at=ticket.on_site_at,
        resolved_at=ticket.resolved_at,
        closed_at=ticket.closed_at,
        updated_at=ticket.updated_at,
    )
    return msg


def device_pb(view: DeviceView) -> maintenance_pb2.Device:
    """Return the gRPC view of a device."""
    device = view.device
    msg = maintenance_pb2.Device(
        device_serial=device.serial,
        manufacturer=device.manufacturer,
        model=device.model,
        institution_id=device.institution_id,
        status=_pb(events_pb2.DeviceStatus, _STATUS, device.status),
        firmware_version=device.firmware_version,
        open_ticket_id=view.open_ticket_id,
        loaned_to_institution_id=device.loaned_to,
        scan_time_7d=duration(timedelta(seconds=view.scan_seconds_7d)),
    )
    if device.last_seen_at is not None:
        msg.last_seen_at.CopyFrom(timestamp(device.last_seen_at))
    return msg
