"""Ticket lifecycle and SLA clocks with hand-worked figures (targets: ack 60 min, on site 24 h)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sonobridge.maintenance.domain.errors import InvalidRequest, InvalidTransition
from sonobridge.maintenance.domain.tickets import (
    ACK_CLOCK,
    ONSITE_CLOCK,
    SlaTargets,
    Ticket,
    TicketSource,
    TicketState,
)

S = TicketState
TARGETS = SlaTargets(acknowledge=timedelta(minutes=60), onsite=timedelta(hours=24))
MON = datetime(2026, 3, 2, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """Return Monday 2 March 2026 + `day` days at hour:minute UTC."""
    return MON + timedelta(days=day, hours=hour, minutes=minute)


def new_ticket(opened: datetime, assignee: str = "eng-li") -> Ticket:
    return Ticket.open(
        ticket_id="t-1",
        device_serial="HP-0001",
        institution_id="township-a",
        symptom="dark vertical stripes",
        source=TicketSource.APP,
        opened_by="nurse-1",
        at=opened,
        targets=TARGETS,
        assignee=assignee,
    )


def test_acknowledged_and_on_site_within_targets():
    t = new_ticket(at(0, 8))
    t.transition(S.ACKNOWLEDGED, at=at(0, 8, 40), actor="eng-li")
    t.transition(S.DISPATCHED, at=at(0, 9), actor="eng-li")
    t.transition(S.ON_SITE, at=at(1, 7, 30), actor="eng-li")
    # ack: 08:00 -> 08:40 = 40 min <= 60 min
    assert t.time_to_acknowledge() == timedelta(minutes=40)
    # on site: Mon 08:00 -> Tue 07:30 = 23 h 30 min <= 24 h
    assert t.time_to_onsite() == timedelta(hours=23, minutes=30)
    assert t.ack_due_at(at(2, 0)) == at(0, 9)  # 08:00 + 1 h
    assert t.onsite_due_at(at(2, 0)) == at(1, 8)  # Mon 08:00 + 24 h
    assert t.unflagged_breaches(at(2, 0)) == []


def test_late_acknowledgement_is_a_breach():
    t = new_ticket(at(0, 8))
    t.transition(S.ACKNOWLEDGED, at=at(0, 9, 15), actor="eng-li")
    # 08:00 -> 09:15 = 75 min > 60 min: breached by 15 min
    assert t.time_to_acknowledge() == timedelta(minutes=75)
    assert t.ack_clock.remaining(t.pauses, at(0, 9, 15)) == timedelta(minutes=-15)
    assert t.unflagged_breaches(at(0, 9, 15)) == [ACK_CLOCK]


def test_acknowledging_exactly_at_the_deadline_is_on_time():
    t = new_ticket(at(0, 8))
    t.transition(S.ACKNOWLEDGED, at=at(0, 9), actor="eng-li")
    # 60 min == target: "within 1 h" holds
    assert t.unflagged_breaches(at(0, 9)) == []


def test_waiting_for_parts_pauses_the_on_site_clock():
    t = new_ticket(at(0, 8))
    t.transition(S.ACKNOWLEDGED, at=at(0, 8, 30), actor="eng-li")
    t.pause(at=at(0, 10), actor="eng-li", reason="waiting for transducer board")
    # While paused the deadline moves with the pause: Mon 08:00 + 24 h + (Tue 09:00 - Mon 10:00)
    assert t.onsite_due_at(at(1, 9)) == at(1, 8) + timedelta(hours=23)
    assert t.sla_status(at(1, 9)) == "paused"
    t.resume(at=at(1, 10), actor="eng-li")
    t.transition(S.DISPATCHED, at=at(1, 11), actor="eng-li")
    t.transition(S.ON_SITE, at=at(1, 14), actor="eng-li")
    # wall: Mon 08:00 -> Tue 14:00 = 30 h; paused Mon 10:00 -> Tue 10:00 = 24 h; net 6 h
    assert t.time_to_onsite() == timedelta(hours=6)
    # due: Mon 08:00 + 24 h + 24 h paused = Wed 08:00
    assert t.onsite_due_at(at(3, 0)) == at(2, 8)
    assert t.paused_total(at(3, 0)) == timedelta(hours=24)
    assert t.unflagged_breaches(at(3, 0)) == []


def test_pause_that_does_not_cover_the_delay_still_breaches():
    t = new_ticket(at(0, 8))
    t.transition(S.ACKNOWLEDGED, at=at(0, 8, 20), actor="eng-li")
    t.pause(at=at(0, 12), actor="eng-li", reason="site closed")
    t.resume(at=at(0, 20), actor="eng-li")
    t.transition(S.DISPATCHED, at=at(1, 9), actor="eng-li")
    t.transition(S.ON_SITE, at=at(1, 17), actor="eng-li")
    # wall: Mon 08:00 -> Tue 17:00 = 33 h; paused 12:00 -> 20:00 = 8 h; net 25 h > 24 h
    assert t.time_to_onsite() == timedelta(hours=25)
    # due: Mon 08:00 + 24 h + 8 h = Tue 16:00, one hour before arrival
    assert t.onsite_due_at(at(2, 0)) == at(1, 16)
    assert t.unflagged_breaches(at(2, 0)) == [ONSITE_CLOCK]


def test_reassignment_before_acknowledgement_keeps_the_clock_running():
    t = new_ticket(at(0, 8), assignee="eng-li")
    t.reassign("eng-wang", at=at(0, 8, 45), actor="manager-zhao", note="eng-li is on leave")
    t.transition(S.ACKNOWLEDGED, at=at(0, 9, 10), actor="eng-wang")
    # The clock belongs to the centre: 08:00 -> 09:10 = 70 min, not 25 min since reassignment.
    assert t.time_to_acknowledge() == timedelta(minutes=70)
    assert t.unflagged_breaches(at(0, 9, 10)) == [ACK_CLOCK]
    assert t.assignee == "eng-wang"


def test_reassignment_while_dispatched_returns_to_acknowledged_without_resetting_on_site():
    t = new_ticket(at(0, 8))
    t.transition(S.ACKNOWLEDGED, at=at(0, 8, 30), actor="eng-li")
    t.transition(S.DISPATCHED, at=at(0, 9), actor="eng-li")
    t.reassign("eng-wang", at=at(0, 15), actor="manager-zhao", note="car broke down")
    assert t.state is S.ACKNOWLEDGED
    assert t.acknowledged_at == at(0, 8, 30)
    t.transition(S.DISPATCHED, at=at(0, 16), actor="eng-wang")
    t.transition(S.ON_SITE, at=at(1, 6), actor="eng-wang")
    # Mon 08:00 -> Tue 06:00 = 22 h, measured from opening, not from the reassignment
    assert t.time_to_onsite() == timedelta(hours=22)
    kinds = [c.kind for c in t.history]
    assert kinds == ["opened", "transition", "transition", "reassigned", "transition", "transition"]


def test_remote_resolution_stops_the_on_site_clock_without_an_on_site_time():
    t = new_ticket(at(0, 8))
    t.transition(S.ACKNOWLEDGED, at=at(0, 8, 10), actor="eng-li")
    t.transition(S.RESOLVED, at=at(0, 10), actor="eng-li", note="firmware pushed remotely")
    assert t.time_to_onsite() is None
    # the clock stopped at 10:00 after 2 h, so it can never breach later
    assert t.onsite_clock.elapsed(t.pauses, at(5, 0)) == timedelta(hours=2)
    assert t.unflagged_breaches(at(5, 0)) == []


def test_unacknowledged_ticket_breaches_once_its_deadline_passes():
    t = new_ticket(at(0, 8))
    assert t.unflagged_breaches(at(0, 9)) == []
    assert t.unflagged_breaches(at(0, 9, 1)) == [ACK_CLOCK]
    assert t.record_breach(ACK_CLOCK, at=at(0, 9, 1), actor="svc", escalate_to="manager-zhao")
    assert not t.record_breach(ACK_CLOCK, at=at(0, 9, 2), actor="svc", escalate_to="x")
    assert "escalated to manager-zhao" in t.history[-1].note
    assert sum(1 for c in t.history if c.kind == "breach") == 1


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ([], S.ON_SITE),
        ([], S.RESOLVED),
        ([S.ACKNOWLEDGED], S.CLOSED),
        ([S.ACKNOWLEDGED, S.DISPATCHED, S.ON_SITE], S.CANCELLED),
        ([S.CANCELLED], S.ACKNOWLEDGED),
        ([S.ACKNOWLEDGED, S.RESOLVED, S.CLOSED], S.OPENED),
    ],
)
def test_invalid_transitions_are_refused_and_leave_no_history(path, bad):
    t = new_ticket(at(0, 8))
    for i, step in enumerate(path):
        t.transition(step, at=at(0, 9, i), actor="eng-li")
    before = list(t.history)
    with pytest.raises(InvalidTransition, match=f"cannot go from {t.state.value}"):
        t.transition(bad, at=at(0, 10), actor="eng-li")
    assert t.history == before


def test_pause_before_acknowledgement_is_refused():
    t = new_ticket(at(0, 8))
    with pytest.raises(InvalidTransition, match="acknowledge it first"):
        t.pause(at=at(0, 8, 5), actor="eng-li", reason="parts")


def test_a_change_dated_before_the_last_one_is_refused():
    t = new_ticket(at(0, 8))
    t.transition(S.ACKNOWLEDGED, at=at(0, 9), actor="eng-li")
    with pytest.raises(InvalidRequest):
        t.transition(S.DISPATCHED, at=at(0, 8, 59), actor="eng-li")


def test_arriving_on_site_ends_an_open_pause():
    t = new_ticket(at(0, 8))
    t.transition(S.ACKNOWLEDGED, at=at(0, 8, 30), actor="eng-li")
    t.transition(S.DISPATCHED, at=at(0, 9), actor="eng-li")
    t.pause(at=at(0, 10), actor="eng-li", reason="road closed")
    t.transition(S.ON_SITE, at=at(0, 13), actor="eng-li")
    assert not t.paused
    # wall 5 h, paused 10:00 -> 13:00 = 3 h, net 2 h
    assert t.time_to_onsite() == timedelta(hours=2)


def test_closing_with_a_loaner_out_is_refused():
    t = new_ticket(at(0, 8))
    t.lend_loaner("SPARE-1", at=at(0, 9), actor="eng-li")
    with pytest.raises(InvalidTransition, match="return loaner SPARE-1"):
        t.check_can_close()
    assert t.take_back_loaner(at=at(0, 10), actor="eng-li") == "SPARE-1"
    t.check_can_close()
