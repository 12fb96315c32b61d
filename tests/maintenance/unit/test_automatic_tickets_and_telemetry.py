"""Automatic tickets from probe health and telemetry, dedupe, idempotent telemetry and usage."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from maintenance.maintenance_support import (
    ADMIN,
    FakeClock,
    engineer,
    exam_completed,
    inference_completed,
    operator,
    outbox_events,
    sample_value,
)
from sqlalchemy import func, select

from sonobridge.maintenance.adapters import orm
from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.health import TelemetrySample
from sonobridge.maintenance.domain.tickets import TicketSource, TicketState
from sonobridge.maintenance.entrypoints.consumer import exam_scan, probe_verdict
from sonobridge.maintenance.handlers.devices import get_device, register_device
from sonobridge.maintenance.handlers.fleet import utilisation_report
from sonobridge.maintenance.handlers.probe_health import record_probe_health
from sonobridge.maintenance.handlers.repairs import transition_ticket
from sonobridge.maintenance.handlers.telemetry import record_telemetry
from sonobridge.maintenance.handlers.tickets import get_ticket, list_tickets, open_ticket
from sonobridge.maintenance.handlers.usage import record_exam_usage

S = TicketState
NURSE = operator("nurse-1", "township-a")
Sample = TelemetrySample


@pytest.fixture
def probe(deps):
    register_device(deps, ADMIN, serial="HP-A1", model="HP-100", institution_id="township-a")
    return deps


def consume_health(deps, message) -> str:
    with deps.units() as work:
        return record_probe_health(deps, work, probe_verdict(message, deps.clock()))


def count(deps, table) -> int:
    with deps.units.sessions.begin() as s:
        return s.execute(select(func.count()).select_from(table)).scalar_one()


def test_ten_exams_with_dead_elements_open_exactly_one_ticket(probe, clock: FakeClock):
    outcomes = []
    for i in range(10):
        clock.advance(hours=2)
        outcomes.append(consume_health(probe, inference_completed("HP-A1", f"1.2.{i}", clock.now)))
    # min_findings = 3: two findings wait, the third opens, the other seven join the ticket
    assert outcomes == ["recorded", "recorded", "opened"] + ["linked"] * 7
    tickets, _ = list_tickets(probe, ADMIN)
    assert len(tickets) == 1
    ticket = tickets[0]
    assert ticket.source is TicketSource.PROBE_HEALTH and ticket.study_instance_uid == "1.2.2"
    assert len(ticket.evidence_keys) == 10
    assert "derived/1.2.9/probe-health/1.0/columns.json" in ticket.evidence_keys
    assert len(outbox_events(probe, "TicketOpened")) == 1
    with probe.units.sessions.begin() as s:
        linked = s.execute(
            select(func.count()).where(orm.probe_findings.c.ticket_id == ticket.id)
        ).scalar_one()
    assert linked == 10


def test_a_probe_verdict_is_dated_by_its_exam_not_by_when_the_run_finished(clock: FakeClock):
    late = inference_completed("HP-A1", "1.2.9", clock.now + timedelta(minutes=30))
    assert probe_verdict(late, clock.now).observed_at == clock.now + timedelta(minutes=30)
    late.exam_completed_at.FromDatetime(clock.now)
    # Two replicas finish out of order; the exam's own time keeps the probe's exams in order.
    assert probe_verdict(late, clock.now + timedelta(hours=1)).observed_at == clock.now


def test_redelivered_inference_changes_nothing(probe, clock):
    message = inference_completed("HP-A1", "1.2.1", clock.now)
    assert consume_health(probe, message) == "recorded"
    assert consume_health(probe, message) == "duplicate"
    assert count(probe, orm.probe_findings) == 1


def test_findings_from_before_a_repair_do_not_count_afterwards(probe, clock):
    for i in range(3):
        clock.advance(hours=1)
        consume_health(probe, inference_completed("HP-A1", f"a.{i}", clock.now))
    (ticket,), _ = list_tickets(probe, ADMIN)
    eng = engineer(ticket.assignee)
    for step in (S.ACKNOWLEDGED, S.DISPATCHED, S.ON_SITE, S.RESOLVED):
        clock.advance(minutes=10)
        transition_ticket(probe, eng, ticket.id, step)
    # a late event about an exam scanned before the repair
    late = inference_completed("HP-A1", "late.1", ticket.opened_at - timedelta(minutes=30))
    clock.advance(minutes=10)
    assert consume_health(probe, late) == "recorded"
    for i in range(2):
        clock.advance(hours=1)
        assert consume_health(probe, inference_completed("HP-A1", f"b.{i}", clock.now)) == (
            "recorded"
        )
    clock.advance(hours=1)
    assert consume_health(probe, inference_completed("HP-A1", "b.2", clock.now)) == "opened"
    assert len(list_tickets(probe, ADMIN)[0]) == 2


def test_healthy_probe_verdicts_are_ignored(probe, clock):
    healthy = inference_completed("HP-A1", "1.2.1", clock.now, fraction=0.0, suspected=False)
    assert consume_health(probe, healthy) == "ignored"
    assert count(probe, orm.probe_findings) == 0


def test_probe_findings_join_an_open_app_ticket_instead_of_opening_another(probe, clock):
    own, _ = open_ticket(probe, NURSE, device_serial="HP-A1", symptom="stripes")
    for i in range(5):
        clock.advance(hours=1)
        assert consume_health(probe, inference_completed("HP-A1", f"x.{i}", clock.now)) == "linked"
    (only,), _ = list_tickets(probe, ADMIN)
    assert only.id == own.id and len(only.evidence_keys) == 5


def test_exam_usage_is_counted_once_per_exam(probe, clock):
    message = exam_completed("HP-A1", "1.3.1", clock.now, scan_seconds=600)
    for _ in range(3):
        with probe.units() as work:
            record_exam_usage(probe, work, exam_scan(message, clock.now))
    reg = probe.metrics.base.registry
    metric = "sonobridge_maintenance_scan_seconds_total"
    assert sample_value(reg, metric, {"institution": "township-a"}) == 600
    assert count(probe, orm.exam_usage) == 1


def test_resent_telemetry_batch_changes_nothing(probe, clock):
    samples = [
        Sample(
            clock.now - timedelta(minutes=m),
            battery_percent=80,
            temperature_c=35,
            scan_seconds=300,
            firmware_version="2.0",
        )
        for m in (30, 20, 10)
    ]
    first = record_telemetry(probe, NURSE, device_serial="HP-A1", samples=samples, batch_id="b-1")
    assert (first.accepted, first.duplicates) == (3, 0)
    with probe.units.sessions.begin() as s:
        before = s.execute(select(orm.daily_usage)).fetchall()
    audits = count(probe, orm.audit_log)
    again = record_telemetry(probe, NURSE, device_serial="HP-A1", samples=samples, batch_id="b-1")
    assert (again.accepted, again.duplicates, again.replayed) == (0, 3, True)
    # the same samples under a new batch id (app reinstalled) are still recognised per sample
    third = record_telemetry(probe, NURSE, device_serial="HP-A1", samples=samples, batch_id="b-2")
    assert (third.accepted, third.duplicates) == (0, 3)
    with probe.units.sessions.begin() as s:
        assert s.execute(select(orm.daily_usage)).fetchall() == before
    assert count(probe, orm.telemetry_samples) == 3
    assert count(probe, orm.audit_log) == audits + 1  # only the b-2 call did anything
    reg = probe.metrics.base.registry
    assert (
        sample_value(
            reg, "sonobridge_maintenance_scan_seconds_total", {"institution": "township-a"}
        )
        == 900
    )


def test_out_of_order_batches_keep_the_newest_firmware(probe, clock):
    newer = [Sample(clock.now - timedelta(hours=1), firmware_version="2.1")]
    older = [Sample(clock.now - timedelta(hours=5), firmware_version="2.0")]
    record_telemetry(probe, NURSE, device_serial="HP-A1", samples=newer, batch_id="n")
    record_telemetry(probe, NURSE, device_serial="HP-A1", samples=older, batch_id="o")
    device = get_device(probe, NURSE, "HP-A1").device
    assert device.firmware_version == "2.1"
    assert device.last_seen_at == clock.now - timedelta(hours=1)


def test_repeated_drops_open_one_telemetry_ticket_whatever_the_arrival_order(probe, clock):
    t = clock.now
    # three drops within 24 h, sent newest batch first
    first = record_telemetry(
        probe,
        NURSE,
        device_serial="HP-A1",
        batch_id="late",
        samples=[Sample(t - timedelta(hours=1), drops=1), Sample(t - timedelta(hours=2), drops=1)],
    )
    assert first.opened_ticket_ids == []
    second = record_telemetry(
        probe,
        NURSE,
        device_serial="HP-A1",
        batch_id="early",
        samples=[Sample(t - timedelta(hours=20), drops=1)],
    )
    assert len(second.opened_ticket_ids) == 1
    ticket = get_ticket(probe, ADMIN, second.opened_ticket_ids[0])
    assert ticket.source is TicketSource.TELEMETRY and "3 drops" in ticket.symptom
    # more drops and overheating while it is open join that ticket (noted once per rule)
    for i in range(3):
        clock.advance(minutes=10)
        more = record_telemetry(
            probe,
            NURSE,
            device_serial="HP-A1",
            batch_id=f"more-{i}",
            samples=[Sample(clock.now, drops=2, temperature_c=47)],
        )
        assert more.opened_ticket_ids == []
    assert len(list_tickets(probe, ADMIN)[0]) == 1
    notes = [c.note for c in get_ticket(probe, ADMIN, ticket.id).history if c.kind == "evidence"]
    assert len(notes) == 1 and notes[0].startswith("telemetry overheating:")


def test_invalid_telemetry_is_refused_with_a_reason(probe, clock):
    with pytest.raises(InvalidRequest, match="battery_percent"):
        record_telemetry(
            probe, NURSE, device_serial="HP-A1", samples=[Sample(clock.now, battery_percent=140)]
        )
    with pytest.raises(InvalidRequest, match="future"):
        record_telemetry(
            probe, NURSE, device_serial="HP-A1", samples=[Sample(clock.now + timedelta(days=2))]
        )


def test_utilisation_reports_hours_per_device_and_suggests_a_move(deps, clock):
    for serial, inst in (("A1", "township-a"), ("A2", "township-a"), ("B1", "township-b")):
        register_device(deps, ADMIN, serial=serial, model="HP-100", institution_id=inst)
    start = clock.now.replace(hour=8)
    for day in range(7):
        base = start + timedelta(days=day)
        for serial, inst, hours in (
            ("A1", "township-a", 1),
            ("A2", "township-a", 0.5),
            ("B1", "township-b", 8),
        ):
            with deps.units() as work:
                record_exam_usage(
                    deps,
                    work,
                    exam_scan(
                        exam_completed(serial, f"{serial}-{day}", base, hours * 3600, inst), base
                    ),
                )
    report = utilisation_report(deps, ADMIN, start=date(2026, 3, 1), end=date(2026, 3, 7))
    loads = {d.serial: (round(d.scan_hours, 2), d.band) for d in report.devices}
    # A1: 1 h x 7 days, A2: 0.5 h x 7, B1: 8 h x 7
    assert loads == {"A1": (7.0, "idle"), "A2": (3.5, "idle"), "B1": (56.0, "overloaded")}
    assert [(m.serial, m.to_institution) for m in report.moves] == [("A2", "township-b")]
    with pytest.raises(InvalidRequest):
        utilisation_report(deps, ADMIN, start=date(2026, 3, 7), end=date(2026, 3, 1))
