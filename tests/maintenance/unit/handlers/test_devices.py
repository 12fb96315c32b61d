"""Device use cases on in-memory fakes: registration, transfer, operators, retirement, reads."""

from __future__ import annotations

import pytest
from maintenance.maintenance_support import ADMIN, FakeClock, engineer, operator
from maintenance.unit.handlers.fakes import FakeUnits, fake_dependencies

from sonobridge.common.problems import Conflict, Forbidden, NotFound
from sonobridge.maintenance.domain.devices import DeviceStatus
from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.utilisation import DailyUsage
from sonobridge.maintenance.handlers import Dependencies
from sonobridge.maintenance.handlers.devices import (
    device_history,
    get_device,
    list_devices,
    register_device,
    retire_device,
    set_operators,
    transfer_device,
)
from sonobridge.maintenance.handlers.tickets import open_ticket

NURSE = operator("nurse-1", "township-a")


@pytest.fixture
def fleet() -> tuple[Dependencies, FakeUnits]:
    deps, units = fake_dependencies()
    register_device(deps, ADMIN, serial=" HP-A1 ", model="HP-200", institution_id="township-a")
    register_device(deps, ADMIN, serial="HP-B1", model="HP-100", institution_id="township-b")
    return deps, units


def test_registering_stores_the_trimmed_serial_history_schedule_and_audit(fleet):
    deps, units = fleet
    assert set(units.state.devices) == {"HP-A1", "HP-B1"}
    assert [e.kind for e in device_history(deps, ADMIN, "HP-A1")] == ["registered"]
    # only HP-200 has a preventive schedule in the test configuration
    assert list(units.state.preventive) == [("HP-A1", "calibration")]
    assert [r.action for r in units.state.audit] == ["device.register"] * 2


def test_registering_twice_or_without_admin_role_or_model_is_refused(fleet):
    deps, units = fleet
    with pytest.raises(Conflict):
        register_device(deps, ADMIN, serial="HP-A1", model="HP-200", institution_id="x")
    with pytest.raises(Forbidden):
        register_device(deps, NURSE, serial="HP-Z", model="HP-200", institution_id="x")
    with pytest.raises(InvalidRequest):
        register_device(deps, ADMIN, serial="HP-Z", model="  ", institution_id="x")
    assert len(units.state.devices) == 2


def test_transfer_moves_home_clears_operators_and_keeps_history(fleet):
    deps, _ = fleet
    set_operators(deps, ADMIN, "HP-A1", ["nurse-1", " nurse-1", "", "nurse-2"])
    assert get_device(deps, ADMIN, "HP-A1").device.operators == ["nurse-1", "nurse-2"]
    moved = transfer_device(deps, ADMIN, "HP-A1", "township-c", "redistribution")
    assert moved.institution_id == "township-c" and moved.operators == []
    history = device_history(deps, ADMIN, "HP-A1")
    assert [(e.kind, e.from_value, e.to_value) for e in history][-1] == (
        "transfer",
        "township-a",
        "township-c",
    )


def test_operators_see_only_their_institutions_devices(fleet):
    deps, _ = fleet
    with pytest.raises(NotFound):
        get_device(deps, NURSE, "HP-B1")
    with pytest.raises(NotFound):
        device_history(deps, NURSE, "HP-B1")
    views, cursor = list_devices(deps, NURSE)
    assert [v.device.serial for v in views] == ["HP-A1"] and cursor == ""
    with pytest.raises(Forbidden):
        list_devices(deps, NURSE, institution_id="township-b")
    with pytest.raises(InvalidRequest):
        list_devices(deps, ADMIN, limit=0)


def test_list_pages_with_a_cursor_and_shows_week_scan_time_and_open_ticket(fleet):
    deps, units = fleet
    today = deps.day(deps.now())
    units.state.usage[("HP-A1", today)] = DailyUsage("HP-A1", today, "township-a", 3600, 1800)
    ticket, _ = open_ticket(deps, NURSE, device_serial="HP-A1", symptom="no image")
    first, cursor = list_devices(deps, engineer("eng-li"), limit=1)
    assert [v.device.serial for v in first] == ["HP-A1"] and cursor == "HP-A1"
    assert first[0].scan_seconds_7d == 3600 and first[0].open_ticket_id == ticket.id
    rest, cursor = list_devices(deps, engineer("eng-li"), after=cursor, limit=1)
    assert [v.device.serial for v in rest] == ["HP-B1"] and cursor == ""


def test_retiring_needs_no_open_tickets_and_announces_the_status(fleet):
    deps, units = fleet
    open_ticket(deps, NURSE, device_serial="HP-A1", symptom="no image")
    with pytest.raises(Conflict):
        retire_device(deps, ADMIN, "HP-A1", "old")
    retired = retire_device(deps, ADMIN, "HP-B1", "")
    assert retired.status is DeviceStatus.RETIRED
    change = units.state.events[-1][1]
    assert (change.serial, change.to_status, change.reason) == (
        "HP-B1",
        DeviceStatus.RETIRED,
        "retired",
    )
    with pytest.raises(NotFound):
        retire_device(deps, ADMIN, "HP-NONE", "gone")


def test_a_naive_clock_is_refused():
    deps, _ = fake_dependencies(FakeClock(now=FakeClock().now.replace(tzinfo=None)))
    with pytest.raises(ValueError, match="aware"):
        register_device(deps, ADMIN, serial="HP-1", model="HP-200", institution_id="a")
