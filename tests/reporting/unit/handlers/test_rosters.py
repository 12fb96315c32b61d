"""Rosters and the audit trail over fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sonobridge.common.problems import Forbidden, InvalidInput, NotFound
from sonobridge.reporting.handlers import rosters

from .fakes import T0, harness, person

ADMIN = person("boss", "admin")


def _shift(user, hours=8):
    return {
        "user": user,
        "role": "primary",
        "starts_at": T0,
        "ends_at": T0 + timedelta(hours=hours),
    }


def test_an_admin_replaces_a_roster_and_readers_see_it():
    h = harness()
    rosters.set_roster(h.deps, ADMIN, "county-thyroid", [_shift("dr-a")])
    shifts = rosters.set_roster(h.deps, ADMIN, "county-thyroid", [_shift("dr-b")])
    assert [s.user for s in shifts] == ["dr-b"]
    seen = rosters.get_roster(h.deps, person("dr-a", "expert"), "county-thyroid")
    assert [s.user for s in seen] == ["dr-b"]
    assert h.tables.audit[-1].detail == "county-thyroid: 1 shifts"


@pytest.mark.parametrize(
    ("who", "worklist", "shifts", "error"),
    [
        (person("dr-a", "expert"), "county-thyroid", [], Forbidden),
        (ADMIN, "nowhere", [], NotFound),
        (ADMIN, "county-thyroid", [_shift("dr-a", hours=-1)], InvalidInput),
    ],
)
def test_bad_roster_changes_are_refused(who, worklist, shifts, error):
    h = harness()
    with pytest.raises(error):
        rosters.set_roster(h.deps, who, worklist, shifts)
    assert h.tables.shifts == {}


def test_rosters_are_not_for_operators():
    with pytest.raises(Forbidden):
        rosters.get_roster(harness().deps, person("op", "operator"), "county-thyroid")


def test_the_audit_trail_is_for_admins_and_needs_a_subject():
    h = harness()
    rosters.set_roster(h.deps, ADMIN, "county-thyroid", [])
    with pytest.raises(Forbidden):
        rosters.audit_trail(h.deps, person("dr-a", "expert"), read_id="x", report_id=None)
    with pytest.raises(InvalidInput):
        rosters.audit_trail(h.deps, ADMIN, read_id=None, report_id=None)
    assert rosters.audit_trail(h.deps, ADMIN, read_id="x", report_id=None) == []
