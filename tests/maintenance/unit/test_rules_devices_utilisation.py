"""Probe-health and telemetry rules, device status and transfers, utilisation bands and moves."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from sonobridge.maintenance.domain.assignment import Region, choose_engineer
from sonobridge.maintenance.domain.devices import Device, DeviceStatus
from sonobridge.maintenance.domain.errors import DeviceUnavailable
from sonobridge.maintenance.domain.health import (
    ProbeFinding,
    ProbeHealthRule,
    TelemetryReading,
    TelemetryRules,
    evaluate_telemetry,
)
from sonobridge.maintenance.domain.utilisation import (
    DeviceUsage,
    UtilisationPolicy,
    analyse,
    daily_seconds,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)


def _findings(*hours: float, clean: tuple[float, ...] = ()) -> list[ProbeFinding]:
    signals = [ProbeFinding(f"f{h}", T0 + h * H, ()) for h in hours]
    return signals + [ProbeFinding(f"c{h}", T0 + h * H, (), fault_signal=False) for h in clean]


def test_probe_rule_needs_enough_findings_inside_one_window_in_any_arrival_order():
    rule = ProbeHealthRule(min_findings=3, window=72 * H, min_dead_fraction=0.02)
    # 0 h, 80 h, 100 h: no three inside 72 h
    assert not rule.persists(_findings(100, 0, 80))
    # adding 150 h makes 80/100/150 span 70 h
    assert rule.persists(_findings(150, 0, 100, 80))


def test_probe_rule_needs_the_signals_in_consecutive_exams():
    rule = ProbeHealthRule(min_findings=3, window=72 * H, min_dead_fraction=0.02)
    assert not rule.persists(_findings(1, 2, 4, clean=(3,)))
    assert rule.persists(_findings(1, 2, 4, 5, 6, clean=(3,)))
    # A clean exam after the run does not undo a persistence already seen.
    assert rule.persists(_findings(1, 2, 3, clean=(4,)))


def test_probe_signal_counts_suspected_faults_or_enough_dead_elements():
    rule = ProbeHealthRule(3, 72 * H, 0.02)
    assert rule.is_fault_signal(suspected_fault=True, dead_fraction=0.0)
    assert rule.is_fault_signal(suspected_fault=False, dead_fraction=0.02)
    assert not rule.is_fault_signal(suspected_fault=False, dead_fraction=0.019)


def test_telemetry_raises_drops_and_overheating_alarms():
    rules = TelemetryRules(3, 24 * H, 43.0, 3, 24 * H)
    readings = [
        TelemetryReading(T0 + 30 * H, 44.0, 1),
        TelemetryReading(T0, 44.5, 1),
        TelemetryReading(T0 + 10 * H, 39.0, 1),
        TelemetryReading(T0 + 20 * H, 45.0, 0),
    ]
    # drops inside any 24 h: {0 h, 10 h} = 2, {10 h, 30 h} = 2 -> no alarm
    # hot readings (> 43 °C) at 0, 20, 30 h: {0, 20} = 2, {20, 30} = 2 -> no alarm
    assert evaluate_telemetry(rules, readings) == []
    readings.append(TelemetryReading(T0 + 25 * H, 43.5, 1))
    # drops {10, 25, 30} = 3; hot {20, 25, 30} = 3
    assert [a.rule for a in evaluate_telemetry(rules, readings)] == ["drops", "overheating"]


def test_device_transfer_clears_operators_and_refuses_loaned_out_devices():
    d = Device("HP-1", "HP-200", "township-a", operators=["nurse-1"])
    assert d.transfer("township-b") == "township-a"
    assert d.operators == []
    spare = Device("SP-1", "HP-200", "county-hospital", spare=True)
    spare.lend_to("township-a", at=T0, ticket_id="t")
    assert spare.holder == "township-a"
    with pytest.raises(DeviceUnavailable):
        spare.transfer("township-c")
    change = spare.take_back(at=T0 + H, ticket_id="t")
    assert (change.from_status, change.to_status) == (
        DeviceStatus.LOANED_OUT,
        DeviceStatus.IN_SERVICE,
    )


def test_only_in_service_spares_can_be_lent():
    with pytest.raises(DeviceUnavailable, match="not a spare"):
        Device("HP-1", "HP-200", "a").lend_to("b", at=T0, ticket_id="t")
    faulty = Device("SP-1", "HP-200", "a", spare=True, status=DeviceStatus.FAULTY)
    with pytest.raises(DeviceUnavailable, match="faulty"):
        faulty.lend_to("b", at=T0, ticket_id="t")


def test_late_telemetry_never_rolls_firmware_back():
    d = Device("HP-1", "HP-200", "a")
    d.observe(T0 + 2 * H, "2.1")
    d.observe(T0 + H, "2.0")
    assert (d.firmware_version, d.last_seen_at) == ("2.1", T0 + 2 * H)


def test_engineer_choice_prefers_the_least_loaded_in_the_region():
    region = Region("north", frozenset({"a"}), ("eng-wang", "eng-li"))
    assert choose_engineer(region, {}) == "eng-li"
    assert choose_engineer(region, {"eng-li": 2, "eng-wang": 1}) == "eng-wang"
    assert choose_engineer(None, {}) == ""


def test_device_day_counts_exams_and_telemetry_once():
    assert daily_seconds(3600, 3000) == 3600
    assert daily_seconds(0, 1800) == 1800


def test_utilisation_bands_and_a_move_from_an_idle_centre_to_an_overloaded_one():
    policy = UtilisationPolicy(idle_hours_per_day=2, overloaded_hours_per_day=6)
    days = [date(2026, 3, d) for d in range(1, 11)]

    def usage(serial: str, inst: str, hours_per_day: float) -> DeviceUsage:
        return DeviceUsage(serial, inst, {d: hours_per_day * 3600 for d in days})

    report = analyse(
        policy,
        [
            usage("A1", "township-a", 1.0),
            usage("A2", "township-a", 1.5),
            usage("A3", "township-a", 0.5),
            usage("B1", "township-b", 9.0),
            usage("C1", "township-c", 4.0),
        ],
        days=10,
    )
    assert {d.serial: d.band for d in report.devices} == {
        "A1": "idle",
        "A2": "idle",
        "A3": "idle",
        "B1": "overloaded",
        "C1": "normal",
    }
    centres = {c.institution_id: c for c in report.centres}
    # township-a: (1.0 + 1.5 + 0.5) h/day * 10 days = 30 h over 3 devices -> 1.0 h/device-day
    assert centres["township-a"].scan_hours == pytest.approx(30)
    assert centres["township-a"].hours_per_device_day == pytest.approx(1.0)
    # B needs 9 h/day on one probe; A keeps 3 h/day on two probes (1.5 <= comfortable 4 h).
    # After one move B runs 4.5 h/probe, no longer overloaded, so exactly one move.
    assert [(m.serial, m.from_institution, m.to_institution) for m in report.moves] == [
        ("A3", "township-a", "township-b")
    ]


def test_no_move_when_no_centre_can_spare_a_probe():
    policy = UtilisationPolicy(2, 6)
    day = date(2026, 3, 1)
    report = analyse(
        policy,
        [
            DeviceUsage("A1", "a", {day: 0.5 * 3600}),
            DeviceUsage("B1", "b", {day: 10 * 3600}),
        ],
        days=1,
    )
    assert report.moves == []
    assert [d.serial for d in report.idle] == ["A1"]
    assert [d.serial for d in report.overloaded] == ["B1"]
