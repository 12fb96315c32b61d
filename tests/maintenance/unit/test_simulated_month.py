"""A simulated March 2026 with faults, pauses, reassignments and breaches; every SLA figure checked.

Targets: acknowledge within 60 min, on site within 24 h. The breach timers tick at minute 1 of
every hour, as the timer loop would, so breaches are flagged before late acknowledgements.
Each expected figure below is worked out by hand in the comment next to it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from maintenance.maintenance_support import (
    ADMIN,
    FakeClock,
    engineer,
    operator,
    outbox_events,
    sample_value,
)

from sonobridge.maintenance.domain.tickets import TicketState
from sonobridge.maintenance.handlers import Dependencies
from sonobridge.maintenance.handlers.devices import register_device
from sonobridge.maintenance.handlers.fleet import fleet_snapshot
from sonobridge.maintenance.handlers.repairs import (
    pause_ticket,
    reassign_ticket,
    resume_ticket,
    transition_ticket,
)
from sonobridge.maintenance.handlers.tickets import get_ticket, open_ticket
from sonobridge.maintenance.handlers.timers import fire_due_timers

S = TicketState
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def march(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


class Month:
    """Drives the handlers through time, ticking the breach timers every hour."""

    def __init__(self, deps: Dependencies, clock: FakeClock) -> None:
        self.deps = deps
        self.clock = clock
        self.fired = 0

    def until(self, when: datetime) -> None:
        tick = self.clock.now.replace(minute=1, second=0, microsecond=0)
        if tick <= self.clock.now:
            tick += HOUR
        while tick < when:
            self.clock.at(tick)
            self.fired += fire_due_timers(self.deps)
            tick += HOUR
        self.clock.at(when)

    def report(self, when: datetime, serial: str, institution: str, symptom: str) -> str:
        self.until(when)
        ticket, _ = open_ticket(
            self.deps,
            operator(f"nurse-{institution}", institution),
            device_serial=serial,
            symptom=symptom,
        )
        return ticket.id

    def step(self, when: datetime, ticket_id: str, to: TicketState, who: str = "") -> None:
        self.until(when)
        actor = engineer(who or get_ticket(self.deps, ADMIN, ticket_id).assignee)
        if to is S.CANCELLED:
            actor = ADMIN
        transition_ticket(self.deps, actor, ticket_id, to)

    def pause(self, when: datetime, ticket_id: str, reason: str) -> None:
        self.until(when)
        assignee = get_ticket(self.deps, ADMIN, ticket_id).assignee
        pause_ticket(self.deps, engineer(assignee), ticket_id, reason)

    def resume(self, when: datetime, ticket_id: str) -> None:
        self.until(when)
        assignee = get_ticket(self.deps, ADMIN, ticket_id).assignee
        resume_ticket(self.deps, engineer(assignee), ticket_id)

    def reassign(self, when: datetime, ticket_id: str) -> str:
        self.until(when)
        current = get_ticket(self.deps, ADMIN, ticket_id).assignee
        other = "eng-wang" if current == "eng-li" else "eng-li"
        reassign_ticket(self.deps, ADMIN, ticket_id, other, "workload")
        return other


def test_a_month_of_faults_pauses_reassignments_and_breaches(deps, clock: FakeClock):
    assert clock.now == march(1, 8)
    for serial, inst in (
        ("HP-A1", "township-a"),
        ("HP-A2", "township-a"),
        ("HP-B1", "township-b"),
        ("HP-C1", "township-c"),
    ):
        register_device(deps, ADMIN, serial=serial, model="HP-100", institution_id=inst)
    m = Month(deps, clock)

    # T1 routine: ack 09:20, on site 15:00 the same day.
    t1 = m.report(march(2, 9), "HP-A1", "township-a", "no image")
    m.step(march(2, 9, 20), t1, S.ACKNOWLEDGED)
    m.step(march(2, 10), t1, S.DISPATCHED)
    m.step(march(2, 15), t1, S.ON_SITE)
    m.step(march(2, 16), t1, S.RESOLVED)

    # T2 night report, nobody acknowledges until 23:30; the 23:01 tick flags the breach.
    t2 = m.report(march(4, 22), "HP-B1", "township-b", "probe hot")
    m.step(march(4, 23, 30), t2, S.ACKNOWLEDGED)
    m.step(march(5, 8), t2, S.DISPATCHED)
    m.step(march(5, 20), t2, S.ON_SITE)
    m.step(march(5, 21), t2, S.RESOLVED)

    # T3 south region, waits 48 h for parts; the pause keeps the on-site timer from firing.
    t3 = m.report(march(8, 8), "HP-C1", "township-c", "dead elements")
    m.step(march(8, 8, 45), t3, S.ACKNOWLEDGED)
    m.pause(march(8, 10), t3, "waiting for transducer array")
    m.resume(march(10, 10), t3)
    m.step(march(10, 11), t3, S.DISPATCHED)
    m.step(march(10, 18), t3, S.ON_SITE)
    m.step(march(10, 19), t3, S.RESOLVED)

    # T4 reassigned before acknowledgement (clock keeps running), then again while dispatched.
    t4 = m.report(march(12, 9), "HP-A2", "township-a", "cable frayed")
    second = m.reassign(march(12, 9, 40), t4)
    m.step(march(12, 10, 5), t4, S.ACKNOWLEDGED, second)
    m.step(march(12, 11), t4, S.DISPATCHED, second)
    third = m.reassign(march(12, 14), t4)
    m.step(march(12, 15), t4, S.DISPATCHED, third)
    m.step(march(13, 8, 30), t4, S.ON_SITE, third)
    m.step(march(13, 9), t4, S.RESOLVED, third)

    # T5 a short pause that does not cover the delay: the on-site clock breaches.
    t5 = m.report(march(15, 8), "HP-A1", "township-a", "intermittent image")
    m.step(march(15, 8, 30), t5, S.ACKNOWLEDGED)
    m.pause(march(15, 9), t5, "centre closed for training")
    m.resume(march(15, 13), t5)
    m.step(march(16, 8), t5, S.DISPATCHED)
    m.step(march(16, 14), t5, S.ON_SITE)
    m.step(march(16, 15), t5, S.RESOLVED)

    # T6 fixed remotely: resolution stops the on-site clock without a visit.
    t6 = m.report(march(20, 8), "HP-B1", "township-b", "app cannot find probe")
    m.step(march(20, 8, 5), t6, S.ACKNOWLEDGED)
    m.step(march(20, 9), t6, S.RESOLVED)

    # T7 cancelled (reported in error) before acknowledgement: no clock may ever fire.
    t7 = m.report(march(25, 8), "HP-C1", "township-c", "battery low")
    m.step(march(25, 8, 30), t7, S.CANCELLED)

    # T8 still waiting for the engineer at month end.
    t8 = m.report(march(28, 18), "HP-A2", "township-a", "no image")
    m.step(march(28, 18, 30), t8, S.ACKNOWLEDGED)
    m.step(march(29, 9), t8, S.DISPATCHED)

    month_end = datetime(2026, 4, 1, tzinfo=UTC)
    m.until(month_end)

    got = {tid: get_ticket(deps, ADMIN, tid) for tid in (t1, t2, t3, t4, t5, t6, t7, t8)}

    def minutes(value: timedelta | None) -> float | None:
        return None if value is None else value.total_seconds() / 60

    expected_ack = {
        t1: 20,  # 09:00 -> 09:20
        t2: 90,  # 22:00 -> 23:30
        t3: 45,  # 08:00 -> 08:45
        t4: 65,  # 09:00 -> 10:05; reassignment at 09:40 does not restart the clock
        t5: 30,  # 08:00 -> 08:30
        t6: 5,  # 08:00 -> 08:05
        t7: None,  # cancelled before acknowledgement
        t8: 30,  # 18:00 -> 18:30
    }
    expected_onsite = {
        t1: 6 * 60,  # 09:00 -> 15:00
        t2: 22 * 60,  # 4th 22:00 -> 5th 20:00
        t3: 10 * 60,  # 8th 08:00 -> 10th 18:00 = 58 h, minus 48 h paused (8th 10:00 -> 10th 10:00)
        t4: 23.5 * 60,  # 12th 09:00 -> 13th 08:30; neither reassignment resets it
        t5: 26 * 60,  # 15th 08:00 -> 16th 14:00 = 30 h, minus 4 h paused (09:00 -> 13:00)
        t6: None,  # resolved remotely
        t7: None,
        t8: None,  # not on site yet
    }
    expected_breach = {  # (ack, on site)
        t1: (False, False),
        t2: (True, False),  # 90 min > 60
        t3: (False, False),  # 10 h net
        t4: (True, False),  # 65 min > 60; 23.5 h <= 24
        t5: (False, True),  # 26 h > 24
        t6: (False, False),  # on-site clock stopped at resolution after 1 h
        t7: (False, False),
        t8: (False, True),  # 28th 18:00 + 24 h = 29th 18:00 passed at month end
    }
    expected_onsite_due = {
        t3: march(11, 8),  # 8th 08:00 + 24 h + 48 h paused
        t5: march(16, 12),  # 15th 08:00 + 24 h + 4 h paused
        t8: march(29, 18),  # 28th 18:00 + 24 h
    }
    for tid, t in got.items():
        assert minutes(t.time_to_acknowledge()) == expected_ack[tid], tid
        assert minutes(t.time_to_onsite()) == expected_onsite[tid], tid
        assert (t.ack_breached, t.onsite_breached) == expected_breach[tid], tid
    for tid, due in expected_onsite_due.items():
        assert got[tid].onsite_due_at(month_end) == due, tid
    # T8 at month end: 28th 18:00 -> 1st April 00:00 = 78 h on the on-site clock, no pauses
    assert got[t8].onsite_clock.elapsed(got[t8].pauses, month_end) == timedelta(hours=78)
    assert got[t4].assignee == third and got[t4].state is S.RESOLVED

    # T4 was reassigned twice; the dispatched reassignment stepped back to acknowledged.
    kinds = [(c.kind, c.to_state.value) for c in got[t4].history if c.kind != "resumed"]
    assert ("reassigned", "acknowledged") in kinds

    # Breaches were escalated to the region's contact exactly once each: T2, T4, T5, T8.
    assert m.fired == 4  # all four were caught by the hourly ticks before any late step
    for tid, contact in (
        (t2, "manager-zhao"),
        (t4, "manager-zhao"),
        (t5, "manager-zhao"),
        (t8, "manager-zhao"),
    ):
        notes = [c.note for c in got[tid].history if c.kind == "breach"]
        assert len(notes) == 1 and f"escalated to {contact}" in notes[0], tid
    flagged = [u for u in outbox_events(deps, "TicketUpdated") if u.note.endswith("manager-zhao")]
    assert sorted(u.ticket_id for u in flagged) == sorted([t2, t4, t5, t8])

    # Metrics: 2 acknowledge and 2 on-site breaches; histograms hold every figure above.
    reg = deps.metrics.base.registry
    breaches = "sonobridge_maintenance_ticket_sla_breaches_total"
    assert sample_value(reg, breaches, {"clock": "acknowledge"}) == 2
    assert sample_value(reg, breaches, {"clock": "onsite"}) == 2
    ack_sum = "sonobridge_maintenance_time_to_acknowledge_seconds_sum"
    # 20 + 90 + 45 + 65 + 30 + 5 + 30 = 285 min over 7 acknowledgements
    assert sample_value(reg, ack_sum) == 285 * 60
    assert sample_value(reg, "sonobridge_maintenance_time_to_acknowledge_seconds_count") == 7
    # 6 + 22 + 10 + 23.5 + 26 = 87.5 h over 5 arrivals
    assert sample_value(reg, "sonobridge_maintenance_time_to_onsite_seconds_sum") == 87.5 * 3600
    assert sample_value(reg, "sonobridge_maintenance_time_to_onsite_seconds_count") == 5

    # The open-tickets gauge: only T8, dispatched and breached.
    snapshot = fleet_snapshot(deps)
    assert snapshot.open_tickets == {("dispatched", "breached"): 1}
    # HP-A2 is faulty at month end, so township-a has 1 of 2 probes in service
    assert snapshot.availability == {
        "township-a": 0.5,
        "township-b": 1.0,
        "township-c": 1.0,
    }
