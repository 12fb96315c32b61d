"""Translate maintenance domain changes into the protobuf events the outbox ships."""

from __future__ import annotations

from datetime import datetime

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.contract_enums import contract_values
from sonobridge.common.timestamps import timestamp
from sonobridge.maintenance.domain.devices import DeviceStatus, StatusChange
from sonobridge.maintenance.domain.tickets import Ticket, TicketSource, TicketState

STATE_TO_PB = contract_values(TicketState, events_pb2.TicketState, "TICKET_STATE_")
SOURCE_TO_PB = contract_values(TicketSource, events_pb2.TicketSource, "TICKET_SOURCE_")
STATUS_TO_PB = contract_values(DeviceStatus, events_pb2.DeviceStatus, "DEVICE_STATUS_")


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
