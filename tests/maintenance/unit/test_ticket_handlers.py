"""Ticket use cases on SQLite with an injected clock: assignment, scoping, timers, loaners."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from maintenance.maintenance_support import (
    ADMIN,
    FakeClock,
    engineer,
    operator,
    outbox_events,
    sample_value,
)
from sqlalchemy import select

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.objects.ports import read_all
from sonobridge.common.problems import Conflict, Forbidden, NotFound
from sonobridge.maintenance.adapters import orm
from sonobridge.maintenance.domain.devices import DeviceStatus
from sonobridge.maintenance.domain.errors import InvalidRequest, InvalidTransition
from sonobridge.maintenance.domain.tickets import TicketState
from sonobridge.maintenance.handlers.devices import (
    device_history,
    get_device,
    register_device,
    transfer_device,
)
from sonobridge.maintenance.handlers.repairs import (
    lend_loaner,
    pause_ticket,
    resume_ticket,
    return_loaner,
    transition_ticket,
)
from sonobridge.maintenance.handlers.tickets import (
    attach_photo,
    get_ticket,
    list_tickets,
    open_ticket,
)
from sonobridge.maintenance.handlers.timers import fire_due_timers, open_due_preventive

S = TicketState
NURSE = operator("nurse-1", "township-a")


@pytest.fixture
def fleet(deps):
    register_device(
        deps,
        ADMIN,
        serial="HP-A1",
        model="HP-200",
        institution_id="township-a",
        operators=["nurse-1"],
    )
    register_device(deps, ADMIN, serial="HP-B1", model="HP-200", institution_id="township-b")
    register_device(
        deps, ADMIN, serial="SPARE-1", model="HP-200", institution_id="county-hospital", spare=True
    )
    return deps


def test_one_tap_report_assigns_a_regional_engineer_and_marks_the_device_faulty(fleet):
    ticket, created = open_ticket(fleet, NURSE, device_serial="HP-A1", symptom="no image")
    assert created and ticket.assignee == "eng-li" and ticket.region == "north"
    assert get_device(fleet, NURSE, "HP-A1").device.status is DeviceStatus.FAULTY
    opened = outbox_events(fleet, "TicketOpened")
    assert [o.ticket_id for o in opened] == [ticket.id]
    assert opened[0].ack_due_at.ToDatetime() == (ticket.opened_at + timedelta(hours=1)).replace(
        tzinfo=None
    )
    changed = outbox_events(fleet, "DeviceStatusChanged")
    assert changed[0].to_status == events_pb2.DEVICE_STATUS_FAULTY
    # the next ticket in the region goes to the less loaded engineer
    second, _ = open_ticket(fleet, ADMIN, device_serial="HP-B1", symptom="cracked lens")
    assert second.assignee == "eng-wang"


def test_repeated_idempotency_key_returns_the_first_ticket(fleet):
    first, created = open_ticket(
        fleet, NURSE, device_serial="HP-A1", symptom="noise", idempotency_key="k-1"
    )
    again, created_again = open_ticket(
        fleet, NURSE, device_serial="HP-A1", symptom="noise", idempotency_key="k-1"
    )
    assert created and not created_again and again.id == first.id
    assert len(outbox_events(fleet, "TicketOpened")) == 1


def test_operators_see_only_their_centre_and_cannot_work_tickets(fleet):
    ticket, _ = open_ticket(fleet, ADMIN, device_serial="HP-B1", symptom="noise")
    with pytest.raises(NotFound):
        get_ticket(fleet, NURSE, ticket.id)
    with pytest.raises(NotFound):
        open_ticket(fleet, NURSE, device_serial="HP-B1", symptom="noise")
    own, _ = open_ticket(fleet, NURSE, device_serial="HP-A1", symptom="noise")
    with pytest.raises(Forbidden):
        transition_ticket(fleet, NURSE, own.id, S.ACKNOWLEDGED)
    other = "eng-li" if own.assignee == "eng-wang" else "eng-wang"
    with pytest.raises(Forbidden, match=f"assigned to {own.assignee}"):
        transition_ticket(fleet, engineer(other), own.id, S.ACKNOWLEDGED)
    listed, _ = list_tickets(fleet, NURSE)
    assert [t.id for t in listed] == [own.id]


def test_breach_timer_fires_exactly_once_and_escalates(fleet, clock: FakeClock):
    ticket, _ = open_ticket(fleet, NURSE, device_serial="HP-A1", symptom="no image")
    clock.advance(minutes=60)
    assert fire_due_timers(fleet) == 0  # exactly at the deadline is still on time
    clock.advance(minutes=1)
    assert fire_due_timers(fleet) == 1
    clock.advance(minutes=5)
    assert fire_due_timers(fleet) == 0
    stored = get_ticket(fleet, ADMIN, ticket.id)
    assert stored.ack_breached and not stored.onsite_breached
    breaches = [c for c in stored.history if c.kind == "breach"]
    assert len(breaches) == 1 and "escalated to manager-zhao" in breaches[0].note
    flagged = [u for u in outbox_events(fleet, "TicketUpdated") if u.ack_sla_breached]
    assert len(flagged) == 1
    # a late acknowledgement does not count the breach a second time
    transition_ticket(fleet, engineer("eng-li"), ticket.id, S.ACKNOWLEDGED)
    registry = fleet.metrics.base.registry
    assert (
        sample_value(
            registry, "sonobridge_maintenance_ticket_sla_breaches_total", {"clock": "acknowledge"}
        )
        == 1
    )
    assert (
        sample_value(registry, "sonobridge_maintenance_time_to_acknowledge_seconds_sum") == 66 * 60
    )


def test_paused_ticket_never_fires_its_timer(fleet, clock: FakeClock):
    ticket, _ = open_ticket(fleet, NURSE, device_serial="HP-A1", symptom="no image")
    eng = engineer("eng-li")
    clock.advance(minutes=10)
    transition_ticket(fleet, eng, ticket.id, S.ACKNOWLEDGED)
    pause_ticket(fleet, eng, ticket.id, "waiting for parts")
    clock.advance(days=3)
    assert fire_due_timers(fleet) == 0
    with fleet.units.sessions.begin() as s:
        timer = s.execute(select(orm.sla_timers).where(orm.sla_timers.c.clock == "onsite")).one()
    assert timer.due_at is None and timer.status == "pending"
    resume_ticket(fleet, eng, ticket.id)
    # 24 h on-site target, 10 min used before the pause: due 23 h 50 min after resuming
    clock.advance(hours=23, minutes=50)
    assert fire_due_timers(fleet) == 0
    clock.advance(minutes=1)
    assert fire_due_timers(fleet) == 1


def test_resolution_returns_the_device_to_service_and_close_needs_the_centre(fleet, clock):
    ticket, _ = open_ticket(fleet, NURSE, device_serial="HP-A1", symptom="no image")
    eng = engineer("eng-li")
    for step in (S.ACKNOWLEDGED, S.DISPATCHED, S.ON_SITE):
        clock.advance(minutes=30)
        transition_ticket(fleet, eng, ticket.id, step)
    assert get_device(fleet, NURSE, "HP-A1").device.status is DeviceStatus.IN_REPAIR
    transition_ticket(fleet, eng, ticket.id, S.RESOLVED, "replaced cable")
    assert get_device(fleet, NURSE, "HP-A1").device.status is DeviceStatus.IN_SERVICE
    with pytest.raises(Forbidden):
        transition_ticket(fleet, eng, ticket.id, S.CLOSED)
    closed = transition_ticket(fleet, NURSE, ticket.id, S.CLOSED, "works again")
    assert closed.state is S.CLOSED
    statuses = [(c.from_status, c.to_status) for c in outbox_events(fleet, "DeviceStatusChanged")]
    assert statuses == [
        (events_pb2.DEVICE_STATUS_IN_SERVICE, events_pb2.DEVICE_STATUS_FAULTY),
        (events_pb2.DEVICE_STATUS_FAULTY, events_pb2.DEVICE_STATUS_IN_REPAIR),
        (events_pb2.DEVICE_STATUS_IN_REPAIR, events_pb2.DEVICE_STATUS_IN_SERVICE),
    ]
    with pytest.raises(InvalidTransition):
        transition_ticket(fleet, ADMIN, ticket.id, S.OPENED)


def test_loaner_is_lent_and_must_come_back_before_closing(fleet, clock):
    ticket, _ = open_ticket(fleet, NURSE, device_serial="HP-A1", symptom="no image")
    eng = engineer("eng-li")
    lend_loaner(fleet, eng, ticket.id, "SPARE-1")
    spare = get_device(fleet, NURSE, "SPARE-1").device
    assert spare.status is DeviceStatus.LOANED_OUT and spare.loaned_to == "township-a"
    with pytest.raises(InvalidTransition, match="already has loaner"):
        lend_loaner(fleet, eng, ticket.id, "SPARE-1")
    for step in (S.ACKNOWLEDGED, S.RESOLVED):
        clock.advance(minutes=20)
        transition_ticket(fleet, eng, ticket.id, step)
    with pytest.raises(InvalidTransition, match="return loaner"):
        transition_ticket(fleet, NURSE, ticket.id, S.CLOSED)
    return_loaner(fleet, eng, ticket.id)
    assert get_device(fleet, ADMIN, "SPARE-1").device.status is DeviceStatus.IN_SERVICE
    transition_ticket(fleet, NURSE, ticket.id, S.CLOSED)
    with pytest.raises(NotFound):  # the nurse no longer holds the spare
        get_device(fleet, NURSE, "SPARE-1")


def test_transfer_keeps_history_and_moves_visibility(fleet, clock):
    clock.advance(hours=1)
    transfer_device(fleet, ADMIN, "HP-A1", "township-c", "redistribution")
    history = device_history(fleet, ADMIN, "HP-A1")
    assert [(h.kind, h.from_value, h.to_value) for h in history] == [
        ("registered", "", "township-a"),
        ("transfer", "township-a", "township-c"),
    ]
    with pytest.raises(NotFound):
        get_device(fleet, NURSE, "HP-A1")
    with pytest.raises(Forbidden):
        transfer_device(fleet, NURSE, "HP-B1", "township-a")


def test_photo_is_stored_under_the_ticket_and_linked_as_evidence(fleet):
    ticket, _ = open_ticket(fleet, NURSE, device_serial="HP-A1", symptom="cracked")
    key = attach_photo(
        fleet, NURSE, ticket.id, io.BytesIO(b"\xff\xd8jpeg"), content_type="image/jpeg", length=6
    )
    assert key.startswith(f"maintenance/tickets/{ticket.id}/") and key.endswith(".jpg")
    assert read_all(fleet.store, key) == b"\xff\xd8jpeg"
    assert get_ticket(fleet, NURSE, ticket.id).evidence_keys == [key]
    with pytest.raises(InvalidRequest):
        attach_photo(fleet, NURSE, ticket.id, io.BytesIO(b"x"), content_type="text/plain")


def test_registering_a_serial_twice_is_a_conflict(fleet):
    with pytest.raises(Conflict):
        register_device(fleet, ADMIN, serial="HP-A1", model="HP-200", institution_id="township-a")


def test_preventive_calibration_opens_one_ticket_when_due_and_reschedules(fleet, clock):
    # HP-200 calibrates every 90 days from registration (2026-03-01 08:00)
    clock.advance(days=89)
    assert open_due_preventive(fleet) == []
    clock.advance(days=1)
    opened = open_due_preventive(fleet)
    assert len(opened) == 3  # HP-A1, HP-B1 and the spare
    assert open_due_preventive(fleet) == []
    ticket = get_ticket(fleet, ADMIN, opened[0])
    assert ticket.source.value == "preventive" and "calibration" in ticket.symptom
    # preventive work does not take the probe out of service, and has looser targets
    assert get_device(fleet, ADMIN, ticket.device_serial).device.status is (DeviceStatus.IN_SERVICE)
    assert ticket.targets.acknowledge == timedelta(hours=24)
    eng = engineer(ticket.assignee)
    clock.advance(hours=2)
    transition_ticket(fleet, eng, ticket.id, S.ACKNOWLEDGED)
    transition_ticket(fleet, eng, ticket.id, S.RESOLVED, "calibrated")
    done_at = clock.now
    clock.at(done_at + timedelta(days=89, hours=23))
    assert ticket.id not in open_due_preventive(fleet)
    with fleet.units.sessions.begin() as s:
        task = s.execute(
            select(orm.preventive_tasks).where(
                orm.preventive_tasks.c.device_serial == ticket.device_serial
            )
        ).one()
    assert task.open_ticket_id is None
    clock.advance(hours=1)
    again = open_due_preventive(fleet)
    assert len(again) == 1
    assert get_ticket(fleet, ADMIN, again[0]).device_serial == ticket.device_serial
