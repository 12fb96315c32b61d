"""SQL devices and tickets: rows in, domain aggregates out; history is only ever appended."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from sonobridge.common.record_rows import record_from_row, row_values
from sonobridge.maintenance.adapters import orm
from sonobridge.maintenance.domain.devices import Device, DeviceHistoryEntry, DeviceStatus
from sonobridge.maintenance.domain.sla import Pause
from sonobridge.maintenance.domain.tickets import (
    OPEN_STATES,
    SlaTargets,
    Ticket,
    TicketChange,
    TicketSource,
    TicketState,
)


class SqlDeviceRepository:
    """Devices in one SQLAlchemy session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @staticmethod
    def _from_row(row: Any) -> Device:
        return record_from_row(
            Device, row, status=DeviceStatus(row.status), operators=list(row.operators)
        )

    @staticmethod
    def _values(d: Device) -> dict[str, Any]:
        return row_values(d, exclude={"serial"}, status=d.status.value, operators=list(d.operators))

    def get(self, serial: str, *, lock: bool = False) -> Device | None:
        """Return the device, or None."""
        query = select(orm.devices).where(orm.devices.c.serial == serial)
        if lock:
            query = query.with_for_update()
        row = self.session.execute(query).first()
        return self._from_row(row) if row else None

    def add(self, device: Device) -> None:
        """Insert a new device."""
        self.session.execute(
            insert(orm.devices).values(serial=device.serial, **self._values(device))
        )

    def save(self, device: Device) -> None:
        """Store the device's current fields."""
        self.session.execute(
            update(orm.devices)
            .where(orm.devices.c.serial == device.serial)
            .values(**self._values(device))
        )

    def find(
        self,
        *,
        institutions: Sequence[str] | None = None,
        status: DeviceStatus | None = None,
        after: str = "",
        limit: int = 100,
    ) -> list[Device]:
        """Return devices sorted by serial, optionally filtered (held or owned by institutions)."""
        t = orm.devices
        query = select(t).where(t.c.serial > after).order_by(t.c.serial).limit(limit)
        if institutions is not None:
            query = query.where(
                t.c.institution_id.in_(institutions) | t.c.loaned_to.in_(institutions)
            )
        if status is not None:
            query = query.where(t.c.status == status.value)
        return [self._from_row(r) for r in self.session.execute(query)]

    def record(self, serial: str, entry: DeviceHistoryEntry) -> None:
        """Append to the device's history."""
        self.session.execute(insert(orm.device_history).values(serial=serial, **row_values(entry)))

    def history(self, serial: str) -> list[DeviceHistoryEntry]:
        """Return the device's history, oldest first."""
        t = orm.device_history
        rows = self.session.execute(select(t).where(t.c.serial == serial).order_by(t.c.id))
        return [record_from_row(DeviceHistoryEntry, r) for r in rows]


class SqlTicketRepository:
    """Tickets in one SQLAlchemy session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _load(self, row: Any, pauses: list[Pause] | None = None, *, history: bool = True) -> Ticket:
        if pauses is None:
            pauses = [
                Pause(p.started_at, p.ended_at, p.reason)
                for p in self.session.execute(
                    select(orm.ticket_pauses)
                    .where(orm.ticket_pauses.c.ticket_id == row.id)
                    .order_by(orm.ticket_pauses.c.seq)
                )
            ]
        changes = (
            [
                TicketChange(
                    at=h.at,
                    actor=h.actor,
                    kind=h.kind,
                    from_state=TicketState(h.from_state),
                    to_state=TicketState(h.to_state),
                    assignee=h.assignee,
                    note=h.note,
                )
                for h in self.session.execute(
                    select(orm.ticket_history)
                    .where(orm.ticket_history.c.ticket_id == row.id)
                    .order_by(orm.ticket_history.c.id)
                )
            ]
            if history
            else []
        )
        return record_from_row(
            Ticket,
            row,
            source=TicketSource(row.source),
            targets=SlaTargets(
                timedelta(seconds=row.ack_target_seconds),
                timedelta(seconds=row.onsite_target_seconds),
            ),
            state=TicketState(row.state),
            evidence_keys=list(row.evidence_keys),
            pauses=pauses,
            history=changes,
        )

    def get(self, ticket_id: str, *, lock: bool = False) -> Ticket | None:
        """Return the ticket, or None."""
        query = select(orm.tickets).where(orm.tickets.c.id == ticket_id)
        if lock:
            query = query.with_for_update()
        row = self.session.execute(query).first()
        return self._load(row) if row else None

    def rule_of(self, ticket_id: str) -> str:
        """Return the rule that opened an automatic ticket ('' for others)."""
        return str(
            self.session.execute(
                select(orm.tickets.c.rule).where(orm.tickets.c.id == ticket_id)
            ).scalar_one()
        )

    @staticmethod
    def _values(t: Ticket) -> dict[str, Any]:
        return {
            "state": t.state.value,
            "assignee": t.assignee,
            "evidence_keys": list(t.evidence_keys),
            "acknowledged_at": t.acknowledged_at,
            "dispatched_at": t.dispatched_at,
            "on_site_at": t.on_site_at,
            "resolved_at": t.resolved_at,
            "closed_at": t.closed_at,
            "cancelled_at": t.cancelled_at,
            "ack_breached": t.ack_breached,
            "onsite_breached": t.onsite_breached,
            "loaner_serial": t.loaner_serial,
            "updated_at": t.updated_at,
        }

    def add(self, ticket: Ticket, *, rule: str = "") -> None:
        """Insert a new ticket and its first history entries."""
        self.session.execute(
            insert(orm.tickets).values(
                id=ticket.id,
                device_serial=ticket.device_serial,
                institution_id=ticket.institution_id,
                symptom=ticket.symptom,
                source=ticket.source.value,
                opened_by=ticket.opened_by,
                opened_at=ticket.opened_at,
                ack_target_seconds=ticket.targets.acknowledge.total_seconds(),
                onsite_target_seconds=ticket.targets.onsite.total_seconds(),
                region=ticket.region,
                study_instance_uid=ticket.study_instance_uid,
                rule=rule,
                version=1,
                **self._values(ticket),
            )
        )
        self._flush_children(ticket)

    def save(self, ticket: Ticket) -> None:
        """Store the ticket's fields, its pauses, and append its new history entries."""
        self.session.execute(
            update(orm.tickets)
            .where(orm.tickets.c.id == ticket.id)
            .values(version=orm.tickets.c.version + 1, **self._values(ticket))
        )
        self._flush_children(ticket)

    def _flush_children(self, ticket: Ticket) -> None:
        p = orm.ticket_pauses
        stored = {
            r.seq: r for r in self.session.execute(select(p).where(p.c.ticket_id == ticket.id))
        }
        for seq, pause in enumerate(ticket.pauses):
            row = stored.get(seq)
            if row is None:
                self.session.execute(
                    insert(p).values(
                        ticket_id=ticket.id,
                        seq=seq,
                        started_at=pause.started_at,
                        ended_at=pause.ended_at,
                        reason=pause.reason,
                    )
                )
            elif pause.ended_at is not None and row.ended_at is None:
                self.session.execute(
                    update(p)
                    .where(p.c.ticket_id == ticket.id, p.c.seq == seq)
                    .values(ended_at=pause.ended_at)
                )
        for change in ticket.new_changes:
            self.session.execute(
                insert(orm.ticket_history).values(
                    ticket_id=ticket.id,
                    at=change.at,
                    actor=change.actor,
                    kind=change.kind,
                    from_state=change.from_state.value,
                    to_state=change.to_state.value,
                    assignee=change.assignee,
                    note=change.note,
                )
            )
        ticket.new_changes.clear()

    def open_for_device(self, serial: str) -> list[Ticket]:
        """Return the device's open tickets, oldest first."""
        t = orm.tickets
        rows = self.session.execute(
            select(t)
            .where(t.c.device_serial == serial, t.c.state.in_([s.value for s in OPEN_STATES]))
            .order_by(t.c.opened_at, t.c.id)
        )
        return [self._load(r) for r in rows]

    def open_fault_ticket(self, serial: str) -> Ticket | None:
        """Return the device's oldest open ticket that is not preventive."""
        for ticket in self.open_for_device(serial):
            if ticket.source is not TicketSource.PREVENTIVE:
                return ticket
        return None

    def open_load(self) -> dict[str, int]:
        """Return open tickets per assignee."""
        t = orm.tickets
        rows = self.session.execute(
            select(t.c.assignee, func.count())
            .where(t.c.state.in_([s.value for s in OPEN_STATES]), t.c.assignee != "")
            .group_by(t.c.assignee)
        )
        return {a: int(n) for a, n in rows}

    def latest_opened_at(self, serial: str, *, source: TicketSource, rule: str) -> datetime | None:
        """Return when the newest ticket of this source and rule was opened for the device."""
        t = orm.tickets
        value = self.session.execute(
            select(func.max(t.c.opened_at)).where(
                t.c.device_serial == serial, t.c.source == source.value, t.c.rule == rule
            )
        ).scalar_one_or_none()
        return value

    def last_repair(self, serial: str) -> datetime | None:
        """Return when the device's last fault ticket was resolved."""
        t = orm.tickets
        value = self.session.execute(
            select(func.max(t.c.resolved_at)).where(
                t.c.device_serial == serial, t.c.source != TicketSource.PREVENTIVE.value
            )
        ).scalar_one_or_none()
        return value

    def find(
        self,
        *,
        institutions: Sequence[str] | None = None,
        states: Sequence[TicketState] | None = None,
        assignee: str | None = None,
        device_serial: str | None = None,
        after: str = "",
        limit: int = 100,
    ) -> list[Ticket]:
        """Return tickets sorted by id, filtered."""
        t = orm.tickets
        query = select(t).where(t.c.id > after).order_by(t.c.id).limit(limit)
        if institutions is not None:
            query = query.where(t.c.institution_id.in_(institutions))
        if states:
            query = query.where(t.c.state.in_([s.value for s in states]))
        if assignee:
            query = query.where(t.c.assignee == assignee)
        if device_serial:
            query = query.where(t.c.device_serial == device_serial)
        return [self._load(r) for r in self.session.execute(query)]

    def open_tickets(self) -> list[Ticket]:
        """Return every open ticket with its pauses but without history (for the gauges)."""
        t = orm.tickets
        p = orm.ticket_pauses
        open_values = [s.value for s in OPEN_STATES]
        rows = self.session.execute(select(t).where(t.c.state.in_(open_values))).fetchall()
        pauses: dict[str, list[Pause]] = {r.id: [] for r in rows}
        # One query for every pause of every open ticket instead of one per ticket.
        for pause in self.session.execute(
            select(p)
            .join(t, t.c.id == p.c.ticket_id)
            .where(t.c.state.in_(open_values))
            .order_by(p.c.ticket_id, p.c.seq)
        ):
            pauses[pause.ticket_id].append(Pause(pause.started_at, pause.ended_at, pause.reason))
        return [self._load(r, pauses[r.id], history=False) for r in rows]
