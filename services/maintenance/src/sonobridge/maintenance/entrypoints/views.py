"""JSON shapes of devices, tickets, history, audit records and utilisation for the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sonobridge.common.audit import AuditRecord
from sonobridge.maintenance.domain.devices import DeviceHistoryEntry
from sonobridge.maintenance.domain.tickets import Ticket
from sonobridge.maintenance.domain.utilisation import UtilisationReport
from sonobridge.maintenance.handlers.devices import DeviceView


def iso(value: datetime | None) -> str | None:
    """Return ISO 8601 text, or None."""
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
        "opened_at": iso(ticket.opened_at),
        "acknowledged_at": iso(ticket.acknowledged_at),
        "dispatched_at": iso(ticket.dispatched_at),
        "on_site_at": iso(ticket.on_site_at),
        "resolved_at": iso(ticket.resolved_at),
        "closed_at": iso(ticket.closed_at),
        "cancelled_at": iso(ticket.cancelled_at),
        "updated_at": iso(ticket.updated_at),
        "loaner_device_serial": ticket.loaner_serial,
        "sla": {
            "ack_due_at": iso(ticket.ack_due_at(now)),
            "onsite_due_at": iso(ticket.onsite_due_at(now)),
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


def device_json(view: DeviceView) -> dict[str, Any]:
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
        "last_seen_at": iso(d.last_seen_at),
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


def device_history_json(entry: DeviceHistoryEntry) -> dict[str, Any]:
    """Render one device history entry."""
    return {
        "at": iso(entry.at),
        "kind": entry.kind,
        "from": entry.from_value,
        "to": entry.to_value,
        "actor": entry.actor,
        "note": entry.note,
        "ticket_id": entry.ticket_id,
    }


def audit_json(record: AuditRecord) -> dict[str, Any]:
    """Render one audit record."""
    return {
        "id": record.id,
        "at": iso(record.at),
        "actor": record.actor,
        "action": record.action,
        "target": record.resource_id,
        "detail": record.detail,
    }
