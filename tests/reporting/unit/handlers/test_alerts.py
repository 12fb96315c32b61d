"""Follow-up alerts and the notification feed over fakes."""

from __future__ import annotations

import pytest

from sonobridge.common.problems import Conflict, Forbidden, InvalidInput, NotFound
from sonobridge.reporting.domain.records import Alert
from sonobridge.reporting.handlers import alerts

from .fakes import T0, harness, person

COORDINATOR = person("co-1", "coordinator")


def _alerted(h, institution="th-1"):
    alert = Alert("a-1", "r-1", 1, "read-1", "1.2.3", institution, ["nodule"], "open", T0)
    h.tables.alerts[alert.alert_id] = alert
    return alert.alert_id


def _change(h, who, action, note=""):
    with h.work() as work:
        return alerts.change_alert(work, h.deps, who, "a-1", action, note)


def test_a_coordinator_acknowledges_then_closes_an_alert():
    h = harness()
    _alerted(h)
    acknowledged = _change(h, COORDINATOR, "acknowledge", "called the patient")
    assert (acknowledged.state, acknowledged.acknowledged_by) == ("acknowledged", "co-1")
    closed = _change(h, COORDINATOR, "close")
    assert (closed.state, closed.note) == ("closed", "called the patient")
    with pytest.raises(Conflict):
        _change(h, COORDINATOR, "close")
    assert [a.action for a in h.tables.audit] == ["alert_acknowledge", "alert_close"]


def test_only_an_open_alert_is_acknowledged_and_actions_are_known():
    h = harness()
    _alerted(h)
    _change(h, COORDINATOR, "acknowledge")
    with pytest.raises(Conflict):
        _change(h, COORDINATOR, "acknowledge")
    with pytest.raises(InvalidInput):
        _change(h, COORDINATOR, "snooze")


def test_alerts_are_for_coordinators_of_their_institution():
    h = harness()
    _alerted(h)
    with pytest.raises(Forbidden):
        _change(h, person("dr-a", "expert"), "close")
    with pytest.raises(NotFound):
        _change(h, person("co-2", "coordinator", institution="elsewhere"), "close")
    assert [a.alert_id for a in alerts.list_alerts(h.deps, COORDINATOR, None)] == ["a-1"]
    assert alerts.list_alerts(h.deps, person("co-2", "coordinator", institution="x"), None) == []
    with pytest.raises(Forbidden):
        alerts.list_alerts(h.deps, person("op", "operator"), None)


def test_the_feed_holds_own_and_role_notifications_after_the_cursor():
    h = harness()
    with h.work() as work:
        work.reporting.notify(kind="a", at=T0, payload={}, user="co-1")
        work.reporting.notify(kind="b", at=T0, payload={}, role="coordinator", institution="th-1")
        work.reporting.notify(kind="c", at=T0, payload={}, role="coordinator", institution="x")
        work.reporting.notify(kind="d", at=T0, payload={}, user="someone-else")
    feed = alerts.notifications(h.deps, COORDINATOR, 0, 10)
    assert [n.kind for n in feed] == ["a", "b"]
    after = alerts.decode_cursor(alerts.encode_cursor(feed[0].id))
    assert [n.kind for n in alerts.notifications(h.deps, COORDINATOR, after, 10)] == ["b"]


@pytest.mark.parametrize("cursor", ["%%%", "bm90LWEtbnVtYmVy"])
def test_a_cursor_that_is_not_ours_is_refused(cursor):
    with pytest.raises(InvalidInput):
        alerts.decode_cursor(cursor)
