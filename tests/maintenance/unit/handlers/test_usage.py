"""Exam-usage use case on in-memory fakes (what the consumer calls for ExamCompleted)."""

from __future__ import annotations

import pytest
from maintenance.maintenance_support import ADMIN, FakeClock
from maintenance.unit.handlers.fakes import fake_dependencies

from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.utilisation import DailyUsage, ExamScan
from sonobridge.maintenance.handlers.devices import register_device
from sonobridge.maintenance.handlers.usage import record_exam_usage


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def probe(clock: FakeClock):  # type: ignore[no-untyped-def]
    deps, units = fake_dependencies(clock)
    register_device(deps, ADMIN, serial="HP-A1", model="HP-100", institution_id="township-a")
    return deps, units


def test_exam_usage_counts_once_and_registers_unknown_probes(probe, clock):
    deps, units = probe
    scan = ExamScan("exam-1", "HP-A1", "", clock.now, 600)
    for _ in range(3):
        with deps.units() as work:
            record_exam_usage(deps, work, scan)
    (day,) = units.state.usage.values()
    assert (day.exam_seconds, day.institution_id) == (600, "township-a")
    reg = deps.metrics.base.registry
    metric = "sonobridge_maintenance_scan_seconds_total"
    assert reg.get_sample_value(metric, {"institution": "township-a"}) == 600
    with deps.units() as work:
        assert record_exam_usage(deps, work, ExamScan("e2", "", "x", clock.now, 5)) is False
    with pytest.raises(InvalidRequest), deps.units() as work:
        record_exam_usage(deps, work, ExamScan("e3", "HP-A1", "", clock.now, -1))
    with pytest.raises(InvalidRequest), deps.units() as work:
        record_exam_usage(deps, work, ExamScan("", "HP-A1", "", clock.now, 1))
    with deps.units() as work:
        record_exam_usage(deps, work, ExamScan("e4", "HP-X", "township-c", clock.now, 60))
    assert units.state.devices["HP-X"].last_seen_at == clock.now
    assert len(units.state.usage) == 2


def test_scan_time_grows_only_when_the_larger_source_grows(probe, clock):
    deps, units = probe
    day = deps.day(clock.now)
    # telemetry already reported 900 s that day: exams and telemetry measure the same scanning
    units.state.usage[("HP-A1", day)] = DailyUsage("HP-A1", day, "township-a", 0, 900)
    for key in ("e1", "e2"):
        with deps.units() as work:
            record_exam_usage(deps, work, ExamScan(key, "HP-A1", "township-a", clock.now, 600))
    assert units.state.usage[("HP-A1", day)].exam_seconds == 1200
    reg = deps.metrics.base.registry
    metric = "sonobridge_maintenance_scan_seconds_total"
    assert reg.get_sample_value(metric, {"institution": "township-a"}) == 300


def test_nothing_is_counted_when_the_transaction_fails(probe, clock):
    deps, units = probe
    with pytest.raises(RuntimeError), deps.units() as work:
        record_exam_usage(deps, work, ExamScan("e1", "HP-A1", "", clock.now, 600))
        raise RuntimeError("commit failed")
    assert units.state.usage == {} and units.state.exams == {}
    reg = deps.metrics.base.registry
    metric = "sonobridge_maintenance_scan_seconds_total"
    assert not reg.get_sample_value(metric, {"institution": "township-a"})
