"""Probe-health use case on in-memory fakes (what the consumer calls for InferenceCompleted)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from maintenance.maintenance_support import ADMIN, FakeClock, engineer, operator
from maintenance.unit.handlers.fakes import FakeUnits, fake_dependencies

from sonobridge.maintenance.domain.devices import DeviceStatus
from sonobridge.maintenance.domain.errors import InvalidRequest
from sonobridge.maintenance.domain.health import ProbeVerdict
from sonobridge.maintenance.domain.tickets import TicketSource, TicketState
from sonobridge.maintenance.handlers import Dependencies
from sonobridge.maintenance.handlers.devices import register_device
from sonobridge.maintenance.handlers.probe_health import record_probe_health
from sonobridge.maintenance.handlers.repairs import transition_ticket
from sonobridge.maintenance.handlers.tickets import open_ticket


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def probe(clock: FakeClock) -> tuple[Dependencies, FakeUnits]:
    deps, units = fake_dependencies(clock)
    register_device(deps, ADMIN, serial="HP-A1", model="HP-100", institution_id="township-a")
    return deps, units


def verdict(study: str, clock: FakeClock, **changes) -> ProbeVerdict:  # type: ignore[no-untyped-def]
    values = {
        "finding_id": f"inf-{study}",
        "device_serial": "HP-A1",
        "institution_id": "township-a",
        "study_instance_uid": study,
        "observed_at": clock.now,
        "suspected_fault": True,
        "dead_element_fraction": 0.05,
        "dead_element_columns": 6,
        "evidence_keys": (f"derived/{study}/a.json", f"derived/{study}/a.json"),
    }
    return ProbeVerdict(**{**values, **changes})


def consume(deps: Dependencies, message: ProbeVerdict) -> str:
    with deps.units() as work:
        return record_probe_health(deps, work, message)


def test_the_third_finding_opens_a_ticket_and_later_ones_join_it(probe, clock):
    deps, units = probe
    outcomes = []
    for i in range(5):
        clock.advance(hours=2)
        outcomes.append(consume(deps, verdict(f"1.2.{i}", clock)))
    assert outcomes == ["recorded", "recorded", "opened", "linked", "linked"]
    (ticket,) = units.state.tickets.values()
    assert ticket.source is TicketSource.PROBE_HEALTH and ticket.study_instance_uid == "1.2.2"
    assert len(ticket.evidence_keys) == 5
    assert all(t == ticket.id for _, t in units.state.findings.values())
    assert units.state.devices["HP-A1"].status is DeviceStatus.FAULTY


def test_repeats_healthy_verdicts_and_unnamed_findings(probe, clock):
    deps, units = probe
    assert consume(deps, verdict("1.1", clock)) == "recorded"
    assert consume(deps, verdict("1.1", clock)) == "duplicate"
    healthy = verdict("1.2", clock, suspected_fault=False, dead_element_fraction=0.001)
    # A fault signal waits, so the clean exam is kept: it interrupts the signal's persistence.
    assert consume(deps, healthy) == "interrupted"
    assert consume(deps, healthy) == "ignored"
    assert consume(deps, verdict("1.3", clock, device_serial="")) == "ignored"
    with pytest.raises(InvalidRequest):
        consume(deps, verdict("1.4", clock, finding_id=""))
    assert list(units.state.findings) == ["inf-1.1", "inf-1.2"]
    assert units.state.clean_findings == {"inf-1.2"}


def test_a_clean_exam_with_nothing_waiting_is_not_stored(probe, clock):
    deps, units = probe
    healthy = verdict("1.1", clock, suspected_fault=False, dead_element_fraction=0.001)
    assert consume(deps, healthy) == "ignored"
    assert units.state.findings == {}


def test_dead_lines_broken_by_clean_exams_never_open_a_ticket(probe, clock):
    deps, units = probe
    outcomes = []
    # One probe's exams: a false alarm now and then, never three in a row.
    for i, faulty in enumerate([True, True, False, True, False, True, True, False, True]):
        clock.advance(hours=1)
        changes = {} if faulty else {"suspected_fault": False, "dead_element_fraction": 0.0}
        outcomes.append(consume(deps, verdict(f"1.5.{i}", clock, **changes)))
    assert "opened" not in outcomes
    assert units.state.tickets == {}
    clock.advance(hours=1)
    assert consume(deps, verdict("1.5.9", clock)) == "recorded"
    clock.advance(hours=1)
    # The third fault signal in a row: the dead lines persist.
    assert consume(deps, verdict("1.5.10", clock)) == "opened"
    (ticket,) = units.state.tickets.values()
    assert "seen in 8 exams" in ticket.symptom


def test_persistence_is_judged_in_exam_order_whatever_the_arrival_order(probe, clock):
    deps, units = probe
    start = clock.now
    clean = {"suspected_fault": False, "dead_element_fraction": 0.0}
    # Exams made at hours 1, 2, 3 (clean), 4; the clean one arrives last but sits between.
    consume(deps, verdict("1.6.1", clock, observed_at=start + timedelta(hours=1)))
    consume(deps, verdict("1.6.2", clock, observed_at=start + timedelta(hours=2)))
    consume(deps, verdict("1.6.4", clock, observed_at=start + timedelta(hours=4)))
    assert len(units.state.tickets) == 1
    # Had the clean exam arrived first, the same three signals would not be consecutive.
    deps2, units2 = fake_dependencies(clock)
    register_device(deps2, ADMIN, serial="HP-A1", model="HP-100", institution_id="township-a")
    consume(deps2, verdict("1.7.1", clock, observed_at=start + timedelta(hours=1)))
    consume(deps2, verdict("1.7.3", clock, observed_at=start + timedelta(hours=3), **clean))
    consume(deps2, verdict("1.7.2", clock, observed_at=start + timedelta(hours=2)))
    assert consume(deps2, verdict("1.7.4", clock, observed_at=start + timedelta(hours=4))) == (
        "recorded"
    )
    assert units2.state.tickets == {}


def test_findings_from_before_the_last_repair_do_not_count(probe, clock):
    deps, _ = probe
    for i in range(2):
        clock.advance(hours=1)
        consume(deps, verdict(f"old.{i}", clock))
    own, _ = open_ticket(deps, operator("n", "township-a"), device_serial="HP-A1", symptom="x")
    eng = engineer(own.assignee)
    transition_ticket(deps, eng, own.id, TicketState.ACKNOWLEDGED)
    clock.advance(hours=1)
    transition_ticket(deps, eng, own.id, TicketState.RESOLVED, "fixed")
    clock.advance(hours=1)
    assert consume(deps, verdict("new.1", clock)) == "recorded"


def test_an_unknown_probe_is_registered_from_the_event(probe, clock):
    deps, units = probe
    consume(deps, verdict("1.9", clock, device_serial="HP-NEW", institution_id="township-b"))
    device = units.state.devices["HP-NEW"]
    assert (device.model, device.institution_id) == ("unknown", "township-b")
