"""Fleet-wide reads on in-memory fakes: audit pages, utilisation and the gauge snapshot."""

from __future__ import annotations

from datetime import date

import pytest
from maintenance.maintenance_support import ADMIN, engineer, operator
from maintenance.unit.handlers.fakes import fake_dependencies

from sonobridge.common.problems import Forbidden
from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.utilisation import DailyUsage
from sonobridge.maintenance.handlers.devices import register_device, retire_device
from sonobridge.maintenance.handlers.fleet import fleet_snapshot, read_audit, utilisation_report
from sonobridge.maintenance.handlers.repairs import lend_loaner
from sonobridge.maintenance.handlers.tickets import open_ticket


def test_audit_pages_with_a_cursor_for_administrators_only():
    deps, _ = fake_dependencies()
    for serial in ("A", "B", "C"):
        register_device(deps, ADMIN, serial=serial, model="HP-100", institution_id="township-a")
    page, cursor = read_audit(deps, ADMIN, limit=2)
    assert [r.resource_id for r in page] == ["A", "B"] and cursor == page[-1].id
    rest, cursor = read_audit(deps, ADMIN, after=cursor, limit=2)
    assert [r.resource_id for r in rest] == ["C"] and cursor == 0
    assert [r.resource_id for r in read_audit(deps, ADMIN, target="B")[0]] == ["B"]
    with pytest.raises(Forbidden):
        read_audit(deps, engineer("eng-li"))
    with pytest.raises(InvalidRequest):
        read_audit(deps, ADMIN, limit=0)


def test_utilisation_takes_the_larger_source_per_day_and_suggests_a_move():
    deps, units = fake_dependencies()
    for serial, inst in (("A1", "township-a"), ("A2", "township-a"), ("B1", "township-b")):
        register_device(deps, ADMIN, serial=serial, model="HP-100", institution_id=inst)
    for d in range(1, 8):
        day = date(2026, 3, d)
        for serial, inst, exam, tele in (
            ("A1", "township-a", 3600, 1800),
            ("A2", "township-a", 0, 1800),
            ("B1", "township-b", 8 * 3600, 0),
        ):
            units.state.usage[(serial, day)] = DailyUsage(serial, day, inst, exam, tele)
    report = utilisation_report(deps, ADMIN, start=date(2026, 3, 1), end=date(2026, 3, 7))
    loads = {d.serial: (round(d.scan_hours, 2), d.band) for d in report.devices}
    assert loads == {"A1": (7.0, "idle"), "A2": (3.5, "idle"), "B1": (56.0, "overloaded")}
    assert [(m.serial, m.to_institution) for m in report.moves] == [("A2", "township-b")]
    with pytest.raises(InvalidRequest):
        utilisation_report(deps, ADMIN, start=date(2026, 3, 7), end=date(2026, 3, 1))
    with pytest.raises(InvalidRequest):
        utilisation_report(deps, ADMIN, start=date(2025, 1, 1), end=date(2026, 3, 1))
    with pytest.raises(Forbidden):
        utilisation_report(
            deps, operator("n", "township-a"), start=date(2026, 3, 1), end=date(2026, 3, 1)
        )


def test_the_snapshot_counts_open_tickets_and_lets_a_loaner_stand_in():
    deps, _ = fake_dependencies()
    register_device(deps, ADMIN, serial="A1", model="HP-100", institution_id="township-a")
    register_device(deps, ADMIN, serial="A2", model="HP-100", institution_id="township-a")
    register_device(deps, ADMIN, serial="OLD", model="HP-100", institution_id="township-a")
    register_device(
        deps, ADMIN, serial="SPARE", model="HP-100", institution_id="county-hospital", spare=True
    )
    retire_device(deps, ADMIN, "OLD", "old")
    ticket, _ = open_ticket(deps, operator("n", "township-a"), device_serial="A1", symptom="x")
    assert fleet_snapshot(deps).availability == {"township-a": 0.5}
    lend_loaner(deps, engineer(ticket.assignee), ticket.id, "SPARE")
    snapshot = fleet_snapshot(deps)
    assert snapshot.open_tickets == {("opened", "ok"): 1}
    assert snapshot.availability == {"township-a": 1.0}
