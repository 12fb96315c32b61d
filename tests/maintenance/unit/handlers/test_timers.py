"""Timer use cases on in-memory fakes: breaches fire once, preventive tickets open when due."""

from __future__ import annotations

from datetime import timedelta

from maintenance.maintenance_support import ADMIN, FakeClock, engineer, operator
from maintenance.unit.handlers.fakes import FakeTimers, fake_dependencies

from sonobridge.maintenance.domain.devices import DeviceStatus
from sonobridge.maintenance.domain.sla import DueTimer
from sonobridge.maintenance.domain.tickets import TicketSource, TicketState
from sonobridge.maintenance.handlers.devices import register_device, retire_device
from sonobridge.maintenance.handlers.repairs import transition_ticket
from sonobridge.maintenance.handlers.tickets import open_ticket
from sonobridge.maintenance.handlers.timers import fire_due_timers, open_due_preventive

NURSE = operator("nurse-1", "township-a")


def test_an_overdue_clock_is_flagged_escalated_and_counted_exactly_once():
    clock = FakeClock()
    deps, units = fake_dependencies(clock)
    register_device(deps, ADMIN, serial="HP-A1", model="HP-100", institution_id="township-a")
    ticket, _ = open_ticket(deps, NURSE, device_serial="HP-A1", symptom="no image")
    clock.advance(hours=1)
    assert fire_due_timers(deps) == 0  # exactly at the deadline is still on time
    clock.advance(seconds=1)
    assert fire_due_timers(deps) == 1
    assert fire_due_timers(deps) == 0
    stored = units.state.tickets[ticket.id]
    assert stored.ack_breached and not stored.onsite_breached
    assert "manager-zhao" in stored.history[-1].note
    assert units.state.audit[-1].action == "ticket.breach"
    reg = deps.metrics.base.registry
    breaches = "sonobridge_maintenance_ticket_sla_breaches_total"
    assert reg.get_sample_value(breaches, {"clock": "acknowledge"}) == 1


def test_a_timer_another_replica_fired_first_is_skipped(monkeypatch):
    clock = FakeClock()
    deps, units = fake_dependencies(clock)
    register_device(deps, ADMIN, serial="HP-A1", model="HP-100", institution_id="township-a")
    ticket, _ = open_ticket(deps, NURSE, device_serial="HP-A1", symptom="no image")
    clock.advance(hours=2)
    stale = [DueTimer(t.id, t.ticket_id) for t in units.state.timers]
    for timer in units.state.timers:
        timer.status = "fired"
    monkeypatch.setattr(FakeTimers, "due", lambda self, now, limit: stale)
    assert fire_due_timers(deps) == 0
    assert not units.state.tickets[ticket.id].ack_breached


def test_a_due_preventive_task_opens_one_ticket_and_resolving_it_reschedules():
    clock = FakeClock()
    deps, units = fake_dependencies(clock)
    register_device(deps, ADMIN, serial="HP-A1", model="HP-200", institution_id="township-a")
    assert open_due_preventive(deps) == []
    clock.advance(days=90)
    (ticket_id,) = open_due_preventive(deps)
    assert open_due_preventive(deps) == []
    ticket = units.state.tickets[ticket_id]
    assert ticket.source is TicketSource.PREVENTIVE and units.state.rules[ticket_id] == (
        "preventive:calibration"
    )
    # preventive work leaves the probe in service
    assert units.state.devices["HP-A1"].status is DeviceStatus.IN_SERVICE
    eng = engineer(ticket.assignee)
    transition_ticket(deps, eng, ticket_id, TicketState.ACKNOWLEDGED)
    transition_ticket(deps, eng, ticket_id, TicketState.RESOLVED, "calibrated")
    task = units.state.preventive[("HP-A1", "calibration")]
    assert task.open_ticket_id is None and task.last_done_at == clock.now
    assert task.next_due_at == clock.now + timedelta(days=90)


def test_a_cancelled_preventive_visit_leaves_the_task_due_and_retired_devices_are_skipped():
    clock = FakeClock()
    deps, units = fake_dependencies(clock)
    register_device(deps, ADMIN, serial="HP-A1", model="HP-200", institution_id="township-a")
    register_device(deps, ADMIN, serial="HP-A2", model="HP-200", institution_id="township-a")
    retire_device(deps, ADMIN, "HP-A2", "old")
    clock.advance(days=91)
    (ticket_id,) = open_due_preventive(deps)
    assert units.state.tickets[ticket_id].device_serial == "HP-A1"
    transition_ticket(deps, ADMIN, ticket_id, TicketState.CANCELLED)
    assert units.state.preventive[("HP-A1", "calibration")].open_ticket_id is None
    (again,) = open_due_preventive(deps)
    assert again != ticket_id
