"""Engineer ticket use cases on in-memory fakes: lifecycle, pauses, reassignment, loaners."""

from __future__ import annotations

import pytest
from maintenance.maintenance_support import ADMIN, FakeClock, engineer, operator
from maintenance.unit.handlers.fakes import FakeUnits, fake_dependencies

from sonobridge.common.problems import Forbidden, NotFound
from sonobridge.maintenance.domain.devices import DeviceStatus
from sonobridge.maintenance.domain.errors import InvalidRequest, InvalidTransition
from sonobridge.maintenance.domain.tickets import Ticket, TicketState
from sonobridge.maintenance.handlers import Dependencies
from sonobridge.maintenance.handlers.devices import register_device
from sonobridge.maintenance.handlers.repairs import (
    lend_loaner,
    pause_ticket,
    reassign_ticket,
    resume_ticket,
    return_loaner,
    transition_ticket,
)
from sonobridge.maintenance.handlers.tickets import open_ticket

S = TicketState
NURSE = operator("nurse-1", "township-a")
LI = engineer("eng-li")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def opened(clock: FakeClock) -> tuple[Dependencies, FakeUnits, Ticket]:
    deps, units = fake_dependencies(clock)
    register_device(deps, ADMIN, serial="HP-A1", model="HP-100", institution_id="township-a")
    register_device(
        deps, ADMIN, serial="SPARE-1", model="HP-100", institution_id="county-hospital", spare=True
    )
    ticket, _ = open_ticket(deps, NURSE, device_serial="HP-A1", symptom="no image")
    assert ticket.assignee == "eng-li"
    return deps, units, ticket


def test_the_lifecycle_moves_the_device_and_counts_response_times(opened, clock):
    deps, units, ticket = opened
    clock.advance(minutes=20)
    transition_ticket(deps, LI, ticket.id, S.ACKNOWLEDGED)
    for step in (S.DISPATCHED, S.ON_SITE):
        clock.advance(hours=1)
        transition_ticket(deps, LI, ticket.id, step)
    assert units.state.devices["HP-A1"].status is DeviceStatus.IN_REPAIR
    transition_ticket(deps, LI, ticket.id, S.RESOLVED, "replaced cable")
    assert units.state.devices["HP-A1"].status is DeviceStatus.IN_SERVICE
    closed = transition_ticket(deps, NURSE, ticket.id, S.CLOSED, "works again")
    assert closed.state is S.CLOSED
    reg = deps.metrics.base.registry
    assert reg.get_sample_value("sonobridge_maintenance_time_to_acknowledge_seconds_sum") == 1200
    assert reg.get_sample_value("sonobridge_maintenance_time_to_onsite_seconds_sum") == 8400
    assert {t.status for t in units.state.timers} == {"cancelled"}
    assert units.state.audit[-1].action == "ticket.closed"


def test_only_the_assignee_an_admin_the_centre_or_the_reporter_may_act(opened):
    deps, units, ticket = opened
    with pytest.raises(Forbidden):
        transition_ticket(deps, NURSE, ticket.id, S.ACKNOWLEDGED)
    with pytest.raises(Forbidden):
        transition_ticket(deps, engineer("eng-wang"), ticket.id, S.ACKNOWLEDGED)
    with pytest.raises(Forbidden):
        transition_ticket(deps, LI, ticket.id, S.CANCELLED)
    with pytest.raises(NotFound):
        transition_ticket(deps, operator("nurse-9", "township-b"), ticket.id, S.CLOSED)
    with pytest.raises(InvalidTransition):
        transition_ticket(deps, NURSE, ticket.id, S.CLOSED)
    cancelled = transition_ticket(deps, NURSE, ticket.id, S.CANCELLED, "false alarm")
    assert cancelled.state is S.CANCELLED
    assert units.state.devices["HP-A1"].status is DeviceStatus.IN_SERVICE


def test_a_failed_transition_changes_nothing(opened):
    deps, units, ticket = opened
    events = list(units.state.events)
    with pytest.raises(InvalidTransition):
        transition_ticket(deps, ADMIN, ticket.id, S.OPENED)
    assert units.state.events == events
    assert units.state.tickets[ticket.id].state is S.OPENED


def test_pausing_suspends_the_timers_and_resuming_rearms_them(opened, clock):
    deps, units, ticket = opened
    transition_ticket(deps, LI, ticket.id, S.ACKNOWLEDGED)
    pause_ticket(deps, LI, ticket.id, "waiting for parts")
    onsite = next(t for t in units.state.timers if t.clock == "onsite")
    assert (onsite.status, onsite.due_at) == ("pending", None)
    clock.advance(hours=5)
    resumed = resume_ticket(deps, LI, ticket.id)
    assert onsite.due_at == resumed.onsite_due_at(clock.now)
    assert onsite.due_at == ticket.opened_at + ticket.targets.onsite + resumed.paused_total(
        clock.now
    )
    with pytest.raises(Forbidden):
        pause_ticket(deps, NURSE, ticket.id, "no")


def test_reassignment_is_for_administrators(opened):
    deps, _, ticket = opened
    with pytest.raises(Forbidden):
        reassign_ticket(deps, LI, ticket.id, "eng-wang")
    moved = reassign_ticket(deps, ADMIN, ticket.id, " eng-wang ", "load")
    assert moved.assignee == "eng-wang"


def test_a_loaner_goes_to_the_centre_and_comes_back(opened):
    deps, units, ticket = opened
    lend_loaner(deps, LI, ticket.id, "SPARE-1")
    spare = units.state.devices["SPARE-1"]
    assert spare.status is DeviceStatus.LOANED_OUT and spare.loaned_to == "township-a"
    with pytest.raises(InvalidRequest):
        lend_loaner(deps, LI, ticket.id, "HP-A1")
    with pytest.raises(Forbidden):
        lend_loaner(deps, NURSE, ticket.id, "SPARE-1")
    back = return_loaner(deps, LI, ticket.id)
    assert back.loaner_serial == ""
    assert units.state.devices["SPARE-1"].status is DeviceStatus.IN_SERVICE
    assert [a.action for a in units.state.audit][-2:] == ["loaner.lend", "loaner.return"]
