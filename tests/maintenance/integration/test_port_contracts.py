"""One contract per port, run against the SQL adapters (SQLite, PostgreSQL) and the fakes alike."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from maintenance.maintenance_support import START, FakeClock, maintenance_config
from maintenance.unit.handlers.fakes import FakeUnits

from sonobridge.common.db import create_db_engine, session_factory
from sonobridge.common.idempotency import StoredAnswer
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.maintenance.__main__ import SPEC
from sonobridge.maintenance.adapters.unit_of_work import SqlUnitsOfWork
from sonobridge.maintenance.domain.devices import Device, DeviceHistoryEntry, DeviceStatus
from sonobridge.maintenance.domain.health import ProbeVerdict, TelemetryBatch, TelemetrySample
from sonobridge.maintenance.domain.utilisation import DailyUsage, ExamScan
from sonobridge.maintenance.handlers import Dependencies
from sonobridge.maintenance.handlers.probe_health import record_probe_health
from sonobridge.maintenance.metrics import MaintenanceMetrics
from sonobridge.maintenance.ports import UnitsOfWork
from sonobridge.maintenance.settings import Settings

HOUR = timedelta(hours=1)


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgresql", marks=pytest.mark.infra)])
def units(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UnitsOfWork]:
    if request.param == "fake":
        yield FakeUnits()
        return
    if request.param == "sqlite":
        result: UnitsOfWork = request.getfixturevalue("deps").units
        yield result
        return
    engine = create_db_engine(request.getfixturevalue("pg_database"))
    # Finalizers run last-in first-out: the pool closes before the database is dropped.
    request.addfinalizer(engine.dispose)
    SPEC.migrate_database(Settings(data_dir=tmp_path), engine)
    yield SqlUnitsOfWork(session_factory(engine))


def test_devices_round_trip_filter_and_keep_history(units):
    with units() as work:
        work.devices.add(Device("B", "HP-100", "township-b", registered_at=START))
        work.devices.add(Device("A", "HP-100", "township-a", spare=True, registered_at=START))
        work.devices.record(
            "A", DeviceHistoryEntry(at=START, kind="registered", actor="admin", to_value="x")
        )
    with units() as work:
        a = work.devices.get("A")
        assert a is not None and a.spare and a.registered_at == START
        a.lend_to("township-b", at=START + HOUR, ticket_id="t")
        work.devices.save(a)
    with units() as work:
        assert [d.serial for d in work.devices.find()] == ["A", "B"]
        assert [d.serial for d in work.devices.find(institutions=["township-b"])] == ["A", "B"]
        assert [d.serial for d in work.devices.find(status=DeviceStatus.LOANED_OUT)] == ["A"]
        assert [d.serial for d in work.devices.find(after="A", limit=1)] == ["B"]
        assert work.devices.history("A") == [
            DeviceHistoryEntry(at=START, kind="registered", actor="admin", to_value="x")
        ]
        assert work.devices.get("Z") is None


def test_a_fired_timer_never_changes_again_and_is_claimed_once(units):
    with units() as work:
        work.timers.arm("t1", "acknowledge", START + HOUR)
        work.timers.arm("t1", "onsite", None)
        work.timers.arm("t2", "acknowledge", START + 2 * HOUR)
        work.timers.cancel("t2", "acknowledge")
    with units() as work:
        assert work.timers.due(START + HOUR, 10) == []
        (due,) = work.timers.due(START + 3 * HOUR, 10)
        assert due.ticket_id == "t1"
        assert work.timers.claim(due.id, START + 3 * HOUR)
        assert not work.timers.claim(due.id, START + 3 * HOUR)
        work.timers.arm("t1", "acknowledge", START + 4 * HOUR)
    with units() as work:
        assert work.timers.due(START + 9 * HOUR, 10) == []


def test_a_preventive_task_is_held_done_and_released(units):
    with units() as work:
        work.preventive.schedule("A", "calibration", START)
    with units() as work:
        (task,) = work.preventive.due(START, 10)
        assert work.preventive.claim("A", "calibration") is not None
        work.preventive.hold("A", "calibration", "t1")
    with units() as work:
        assert work.preventive.due(START, 10) == []
        assert work.preventive.claim("A", "calibration") is None
        held = work.preventive.held_by("t1")
        assert held is not None and held.kind == "calibration"
        work.preventive.done("A", "calibration", at=START + HOUR, next_due_at=None)
    with units() as work:
        (task,) = work.preventive.due(START, 10)
        assert (task.last_done_at, task.next_due_at, task.open_ticket_id) == (
            START + HOUR,
            START,
            None,
        )
        work.preventive.hold("A", "calibration", "t2")
        work.preventive.release("t2")
    with units() as work:
        assert work.preventive.held_by("t2") is None


def test_usage_days_and_counted_exams(units):
    day = START.date()
    with units() as work:
        assert work.usage.day("A", day) is None
        work.usage.add_day(DailyUsage("A", day, "township-a", 60, 0))
        work.usage.add_day(DailyUsage("B", day + timedelta(days=1), "township-b", 0, 30))
        work.usage.count_exam(ExamScan("e1", "A", "township-a", START, 60), day)
    with units() as work:
        work.usage.save_day(DailyUsage("A", day, "township-a", 120, 10))
    with units() as work:
        assert work.usage.day("A", day) == DailyUsage("A", day, "township-a", 120, 10)
        assert sorted(u.device_serial for u in work.usage.days(day)) == ["A", "B"]
        assert [u.device_serial for u in work.usage.days(day, day)] == ["A"]
        assert [u.device_serial for u in work.usage.days(day, serial="B")] == ["B"]
        assert work.usage.exam_counted("e1") and not work.usage.exam_counted("e2")


def test_telemetry_samples_batches_and_readings(units):
    samples = [TelemetrySample(START + i * HOUR, temperature_c=40 + i, drops=i) for i in range(3)]
    with units() as work:
        work.telemetry.add_samples("A", "b1", samples)
        work.telemetry.add_batch(TelemetryBatch("b1", "A", START, 3, 0, ("t1",)))
    with units() as work:
        assert work.telemetry.stored_times("A", [START, START + 5 * HOUR]) == {START}
        assert work.telemetry.stored_times("B", [START]) == set()
        assert work.telemetry.batch("b1") == TelemetryBatch("b1", "A", START, 3, 0, ("t1",))
        assert work.telemetry.batch("b2") is None
        readings = work.telemetry.readings("A", START + HOUR, START + 2 * HOUR)
        assert [(r.recorded_at, r.temperature_c, r.drops) for r in readings] == [
            (START + HOUR, 41, 1),
            (START + 2 * HOUR, 42, 2),
        ]


def test_probe_findings_wait_unticketed_until_linked(units):
    def verdict(n: int) -> ProbeVerdict:
        return ProbeVerdict(
            f"f{n}", "A", "township-a", f"1.{n}", START + n * HOUR, True, 0.1, 3, (f"k{n}",)
        )

    with units() as work:
        for n in range(3):
            work.findings.add(verdict(n))
    with units() as work:
        assert work.findings.known("f1") and not work.findings.known("f9")
        pending = work.findings.unticketed("A", START)
        assert sorted(f.finding_id for f in pending) == ["f1", "f2"]
        work.findings.link(["f1"], "t1")
    with units() as work:
        assert sorted(f.finding_id for f in work.findings.unticketed("A", None)) == ["f0", "f2"]
        work.findings.add(verdict(5), fault_signal=False)
    with units() as work:
        signals = {f.finding_id: f.fault_signal for f in work.findings.unticketed("A", None)}
        assert signals == {"f0": True, "f2": True, "f5": False}


def test_clean_exams_interrupt_dead_lines_through_the_handler(units):
    clock = FakeClock()
    deps = Dependencies(
        units=units,
        config=maintenance_config(),
        clock=clock,
        metrics=MaintenanceMetrics(ServiceMetrics("maintenance")),
    )
    signal = ProbeVerdict("p0", "PH-1", "township-a", "2.0", START, True, 0.1, 3, ("k",))
    outcomes = []
    # fault, fault, clean, fault, fault, fault: only the last three persist.
    for n, faulty in enumerate([True, True, False, True, True, True]):
        verdict = replace(
            signal,
            finding_id=f"p{n}",
            study_instance_uid=f"2.{n}",
            observed_at=START + n * HOUR,
            suspected_fault=faulty,
            dead_element_fraction=0.1 if faulty else 0.0,
        )
        with units() as work:
            outcomes.append(record_probe_health(deps, work, verdict))
    assert outcomes == ["recorded", "recorded", "interrupted", "recorded", "recorded", "opened"]
    with units() as work:
        (ticket,) = work.tickets.open_for_device("PH-1")
        assert "seen in 5 exams" in ticket.symptom


def test_request_keys_and_audit_pages(units):
    with units() as work:
        work.request_keys.reserve("nurse-1", "k1", "f1", START)
        work.request_keys.remember("nurse-1", "k1", 201, {"ticket_id": "t1"})
        for target in ("A", "B", "A"):
            work.audit.write(at=START, actor="admin", action="device.register", target=target)
    with units() as work:
        assert work.request_keys.find("nurse-1", "k1") == StoredAnswer(
            "f1", 201, {"ticket_id": "t1"}
        )
        assert work.request_keys.find("nurse-2", "k1") is None
        first = work.audit.page(target="", after=0, limit=2)
        assert [r.resource_id for r in first] == ["A", "B"] and first[0].at == START
        rest = work.audit.page(target="", after=first[-1].id, limit=10)
        assert [r.resource_id for r in rest] == ["A"]
        assert [r.resource_id for r in work.audit.page(target="B", after=0, limit=10)] == ["B"]


def test_a_block_that_raises_leaves_nothing_behind(units):
    with pytest.raises(RuntimeError), units() as work:
        work.devices.add(Device("A", "HP-100", "township-a", registered_at=START))
        raise RuntimeError("rolled back")
    with units() as work:
        assert work.devices.get("A") is None
