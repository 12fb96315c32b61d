"""Translate maintenance domain objects to and from the protobuf contracts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.maintenance.v1 import maintenance_pb2
from sonobridge.maintenance.domain.devices import Device, DeviceStatus, StatusChange
from sonobridge.maintenance.domain.tickets import Ticket, TicketSource, TicketState

STATE_TO_PB = {
    TicketState.OPENED: events_pb2.TICKET_STATE_OPENED,
    TicketState.ACKNOWLEDGED: events_pb2.TICKET_STATE_ACKNOWLEDGED,
    TicketState.DISPATCHED: events_pb2.TICKET_STATE_DISPATCHED,
    TicketState.ON_SITE: events_pb2.TICKET_STATE_ON_SITE,
    TicketState.RESOLVED: events_pb2.TICKET_STATE_RESOLVED,
    TicketState.CLOSED: events_pb2.TICKET_STATE_CLOSED,
    TicketState.CANCELLED: events_pb2.TICKET_STATE_CANCELLED,
}
SOURCE_TO_PB = {
    TicketSource.APP: events_pb2.TICKET_SOURCE_APP,
    TicketSource.PROBE_HEALTH: events_pb2.TICKET_SOURCE_PROBE_HEALTH,
    TicketSource.TELEMETRY: events_pb2.TICKET_SOURCE_TELEMETRY,
    TicketSource.PREVENTIVE: events_pb2.TICKET_SOURCE_PREVENTIVE,
}
PB_TO_SOURCE = {v: k for k, v in SOURCE_TO_PB.items()}
STATUS_TO_PB = {
    DeviceStatus.IN_SERVICE: events_pb2.DEVICE_STATUS_IN_SERVICE,
    DeviceStatus.FAULTY: events_pb2.DEVICE_STATUS_FAULTY,
    DeviceStatus.IN_REPAIR: events_pb2.DEVICE_STATUS_IN_REPAIR,
    DeviceStatus.LOANED_OUT: events_pb2.DEVICE_STATUS_LOANED_OUT,
    DeviceStatus.RETIRED: events_pb2.DEVICE_STATUS_RETIRED,
}
PB_TO_STATUS = {v: k for k, v in STATUS_TO_PB.items()}


def timestamp(value: datetime) -> Timestamp:
    """Return a protobuf Timestamp."""
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def duration(value: timedelta) -> Duration:
    """Return a protobuf Duration."""
    d = Duration()
    d.FromTimedelta(value)
    return d


def ticket_opened(ticket: Ticket) -> events_pb2.TicketOpened:
    """Return the TicketOpened event for a new ticket."""
    return events_pb2.TicketOpened(
        ticket_id=ticket.id,
        device_serial=ticket.device_serial,
        institution_id=ticket.institution_id,
        symptom=ticket.symptom,
        source=SOURCE_TO_PB[ticket.source],
        opened_at=timestamp(ticket.opened_at),
        ack_due_at=timestamp(ticket.ack_due_at(ticket.opened_at)),
        onsite_due_at=timestamp(ticket.onsite_due_at(ticket.opened_at)),
        evidence_object_keys=ticket.evidence_keys,
        opened_by=ticket.opened_by,
        study_instance_uid=ticket.study_instance_uid,
    )


def ticket_updated(
    ticket: Ticket, *, before: TicketState, at: datetime, actor: str, note: str
) -> events_pb2.TicketUpdated:
    """Return the TicketUpdated event for a change."""
    return events_pb2.TicketUpdated(
        ticket_id=ticket.id,
        device_serial=ticket.device_serial,
        from_state=STATE_TO_PB[before],
        to_state=STATE_TO_PB[ticket.state],
        assignee=ticket.assignee,
        paused=ticket.paused,
        ack_sla_breached=ticket.ack_breached,
        onsite_sla_breached=ticket.onsite_breached,
        updated_at=timestamp(at),
        actor=actor,
        note=note,
        institution_id=ticket.institution_id,
    )


def device_status_changed(change: StatusChange) -> events_pb2.DeviceStatusChanged:
    """Return the DeviceStatusChanged event for a change."""
    return events_pb2.DeviceStatusChanged(
        device_serial=change.serial,
        institution_id=change.institution_id,
        from_status=STATUS_TO_PB[change.from_status],
        to_status=STATUS_TO_PB[change.to_status],
        changed_at=timestamp(change.at),
        reason=change.reason,
        ticket_id=change.ticket_id,
    )


def ticket_pb(ticket: Ticket, now: datetime) -> maintenance_pb2.Ticket:
    """Return the gRPC view of a ticket."""
    msg = maintenance_pb2.Ticket(
        ticket_id=ticket.id,
        device_serial=ticket.device_serial,
        institution_id=ticket.institution_id,
        symptom=ticket.symptom,
        source=SOURCE_TO_PB[ticket.source],
        state=STATE_TO_PB[ticket.state],
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
    for name, value in (
        ("acknowledged_at", ticket.acknowledged_at),
        ("on_site_at", ticket.on_site_at),
        ("resolved_at", ticket.resolved_at),
        ("closed_at", ticket.closed_at),
        ("updated_at", ticket.updated_at),
    ):
        if value is not None:
            getattr(msg, name).CopyFrom(timestamp(value))
    return msg


def device_pb(
    device: Device, *, open_ticket_id: str, scan_time_7d: timedelta
) -> maintenance_pb2.Device:
    """Return the gRPC view of a device."""
    msg = maintenance_pb2.Device(
        device_serial=device.serial,
        manufacturer=device.manufacturer,
        model=device.model,
        institution_id=device.institution_id,
        status=STATUS_TO_PB[device.status],
        firmware_version=device.firmware_version,
        open_ticket_id=open_ticket_id,
        loaned_to_institution_id=device.loaned_to,
        scan_time_7d=duration(scan_time_7d),
    )
    if device.last_seen_at is not None:
        msg.last_seen_at.CopyFrom(timestamp(device.last_seen_at))
    return msg


def aware_datetime(ts: Timestamp) -> datetime:
    """Return a Timestamp as an aware UTC datetime."""
    return ts.ToDatetime(tzinfo=UTC)
