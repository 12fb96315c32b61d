"""Telemetry use case on in-memory fakes: idempotent batches, validation, drop and heat alarms."""

from __future__ import annotations

from datetime import timedelta

import pytest
from maintenance.maintenance_support import ADMIN, FakeClock, operator
from maintenance.unit.handlers.fakes import FakeUnits, fake_dependencies

from sonobridge.common.auth import Principal
from sonobridge.common.problems import Conflict, Forbidden, NotFound
from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.health import TelemetrySample
from sonobridge.maintenance.domain.tickets import TicketSource
from sonobridge.maintenance.handlers import Dependencies
from sonobridge.maintenance.handlers.devices import register_device
from sonobridge.maintenance.handlers.telemetry import record_telemetry
from sonobridge.maintenance.handlers.tickets import open_ticket

NURSE = operator("nurse-1", "township-a")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def probe(clock: FakeClock) -> tuple[Dependencies, FakeUnits]:
    deps, units = fake_dependencies(clock)
    register_device(deps, ADMIN, serial="HP-A1", model="HP-100", institution_id="township-a")
    return deps, units


def test_a_resent_batch_is_answered_from_memory_and_samples_count_once(probe, clock):
    deps, units = probe
    samples = [
        TelemetrySample(clock.now - timedelta(minutes=m), scan_seconds=300, firmware_version="2.0")
        for m in (30, 20, 10)
    ]
    first = record_telemetry(deps, NURSE, device_serial="HP-A1", samples=samples, batch_id="b-1")
    assert (first.accepted, first.duplicates, first.replayed) == (3, 0, False)
    again = record_telemetry(deps, NURSE, device_serial="HP-A1", samples=samples, batch_id="b-1")
    assert (again.accepted, again.duplicates, again.replayed) == (0, 3, True)
    third = record_telemetry(deps, NURSE, device_serial="HP-A1", samples=samples, batch_id="b-2")
    assert (third.accepted, third.duplicates) == (0, 3)
    (day,) = units.state.usage.values()
    assert day.telemetry_seconds == 900
    device = units.state.devices["HP-A1"]
    assert device.firmware_version == "2.0" and device.last_seen_at == clock.now - timedelta(
        minutes=10
    )
    reg = deps.metrics.base.registry
    metric = "sonobridge_maintenance_scan_seconds_total"
    assert reg.get_sample_value(metric, {"institution": "township-a"}) == 900
    register_device(deps, ADMIN, serial="HP-B1", model="HP-100", institution_id="township-a")
    with pytest.raises(Conflict):
        record_telemetry(deps, NURSE, device_serial="HP-B1", samples=samples, batch_id="b-1")


@pytest.mark.parametrize(
    "bad",
    [
        {"battery_percent": 101},
        {"temperature_c": 130},
        {"drops": -1},
        {"scan_seconds": 86401},
        {"recorded_at": "future"},
        {"recorded_at": "naive"},
    ],
)
def test_impossible_readings_are_refused_before_anything_is_stored(probe, clock, bad):
    deps, units = probe
    values = dict(bad)
    if values.get("recorded_at") == "future":
        values["recorded_at"] = clock.now + timedelta(days=2)
    elif values.get("recorded_at") == "naive":
        values["recorded_at"] = clock.now.replace(tzinfo=None)
    sample = TelemetrySample(**{"recorded_at": clock.now, **values})
    with pytest.raises(InvalidRequest):
        record_telemetry(deps, NURSE, device_serial="HP-A1", samples=[sample])
    assert units.state.samples == {}


def test_empty_oversized_foreign_and_unknown_batches_are_refused(probe, clock):
    deps, _ = probe
    with pytest.raises(InvalidRequest):
        record_telemetry(deps, NURSE, device_serial="HP-A1", samples=[])
    deps.config.telemetry.max_samples_per_batch = 1
    two = [TelemetrySample(clock.now), TelemetrySample(clock.now - timedelta(seconds=1))]
    with pytest.raises(InvalidRequest):
        record_telemetry(deps, NURSE, device_serial="HP-A1", samples=two)
    with pytest.raises(NotFound):
        record_telemetry(deps, operator("n", "township-b"), device_serial="HP-A1", samples=two[:1])
    with pytest.raises(NotFound):
        record_telemetry(deps, NURSE, device_serial="HP-NONE", samples=two[:1])
    with pytest.raises(Forbidden):
        record_telemetry(
            deps,
            Principal("x", frozenset(), "township-a"),
            device_serial="HP-A1",
            samples=two[:1],
        )


def test_repeated_drops_open_one_telemetry_ticket(probe, clock):
    deps, units = probe
    samples = [TelemetrySample(clock.now - timedelta(hours=h), drops=1) for h in (3, 2, 1)]
    result = record_telemetry(deps, NURSE, device_serial="HP-A1", samples=samples)
    (ticket_id,) = result.opened_ticket_ids
    ticket = units.state.tickets[ticket_id]
    assert ticket.source is TicketSource.TELEMETRY and units.state.rules[ticket_id] == "drops"
    more = [TelemetrySample(clock.now - timedelta(minutes=m), drops=1) for m in (30, 20, 10)]
    assert (
        record_telemetry(deps, NURSE, device_serial="HP-A1", samples=more).opened_ticket_ids == []
    )
    assert len(units.state.tickets) == 1


def test_overheating_joins_an_open_ticket_as_a_note_once(probe, clock):
    deps, units = probe
    own, _ = open_ticket(deps, NURSE, device_serial="HP-A1", symptom="stripes")
    for batch in range(2):
        hot = [
            TelemetrySample(clock.now - timedelta(minutes=10 * i + batch), temperature_c=50)
            for i in range(3)
        ]
        assert (
            record_telemetry(deps, NURSE, device_serial="HP-A1", samples=hot).opened_ticket_ids
            == []
        )
    notes = [c.note for c in units.state.tickets[own.id].history]
    assert sum(n.startswith("telemetry overheating:") for n in notes) == 1
