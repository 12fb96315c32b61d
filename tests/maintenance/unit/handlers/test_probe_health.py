"""Probe-health use case on in-memory fakes (what the consumer calls for InferenceCompleted)."""

from __future__ import annotations

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
    assert consume(deps, healthy) == "ignored"
    assert consume(deps, verdict("1.3", clock, device_serial="")) == "ignored"
    with pytest.raises(InvalidRequest):
        consume(deps, verdict("1.4", clock, finding_id=""))
    assert list(units.state.findings) == ["inf-1.1"]


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
