"""Fleet-wide reads: the audit trail, utilisation report and the gauges' snapshot."""

from __future__ import annotations

from datetime import date

from sonobridge.common.audit import AuditRecord
from sonobridge.common.auth import Principal
from sonobridge.common.paging import split_page
from sonobridge.maintenance.domain.devices import DeviceStatus
from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.utilisation import DeviceUsage, UtilisationReport, analyse
from sonobridge.maintenance.handlers import Dependencies, scope
from sonobridge.maintenance.metrics import FleetSnapshot


def read_audit(
    deps: Dependencies, principal: Principal, *, target: str = "", after: int = 0, limit: int = 100
) -> tuple[list[AuditRecord], int]:
    """Return a page of audit records (administrators only) and the next cursor (0 at the end)."""
    principal.require_role("admin")
    if not 1 <= limit <= 1000:
        raise InvalidRequest("page size must be between 1 and 1000")
    with deps.units() as work:
        records = work.audit.page(target=target, after=after, limit=limit + 1)
    page, last = split_page(records, limit)
    return page, (last.id or 0) if last else 0


def utilisation_report(
    deps: Dependencies, principal: Principal, *, start: date, end: date
) -> UtilisationReport:
    """Scan hours per device and centre over [start, end], idle/overloaded, suggested moves."""
    principal.require_role("admin", "coordinator", "engineer")
    if end < start:
        raise InvalidRequest("end must not be before start")
    if (end - start).days > 366:
        raise InvalidRequest("a utilisation period is at most a year")
    visible = scope.visible_institutions(principal)
    with deps.units() as work:
        devices = work.devices.find(institutions=visible, limit=100_000)
        days = work.usage.days(start, end)
    by_device: dict[str, dict[date, float]] = {}
    for day in days:
        by_device.setdefault(day.device_serial, {})[day.day] = day.seconds
    usage = [
        DeviceUsage(d.serial, d.holder, by_device.get(d.serial, {}))
        for d in devices
        if d.status in (DeviceStatus.IN_SERVICE, DeviceStatus.LOANED_OUT)
    ]
    return analyse(deps.config.utilisation.policy(), usage, (end - start).days + 1)


def fleet_snapshot(deps: Dependencies) -> FleetSnapshot:
    """Read the open-ticket and availability gauges."""
    now = deps.now()
    with deps.units() as work:
        tickets = work.tickets.open_tickets()
        devices = work.devices.find(limit=1_000_000)
    counts: dict[tuple[str, str], int] = {}
    for ticket in tickets:
        label = (ticket.state.value, ticket.sla_status(now))
        counts[label] = counts.get(label, 0) + 1
    assigned: dict[str, int] = {}
    usable: dict[str, int] = {}
    for d in devices:
        if d.status is DeviceStatus.RETIRED:
            continue
        if not d.spare:
            assigned[d.institution_id] = assigned.get(d.institution_id, 0) + 1
            if d.status is DeviceStatus.IN_SERVICE:
                usable[d.institution_id] = usable.get(d.institution_id, 0) + 1
        elif d.status is DeviceStatus.LOANED_OUT:
            usable[d.loaned_to] = usable.get(d.loaned_to, 0) + 1
    # A loaner stands in for a probe under repair, so it counts; never above full availability.
    availability = {i: min(1.0, usable.get(i, 0) / n) for i, n in assigned.items()}
    return FleetSnapshot(counts, availability)
