"""The access policy: role x institution x consortium, with and without an institution registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sonobridge.common.access import (
    AccessPolicy,
    Action,
    Institution,
    InstitutionRegistry,
    Reach,
    Tier,
)
from sonobridge.common.auth import Principal
from sonobridge.common.problems import Forbidden
from sonobridge.common.settings import AccessSettings

CONSORTIUM = "qingshan-county"
COUNTY = "county-hospital"
RIVER, EAST = "township-river", "township-east"
PROVINCE = "provincial-hospital"

REGISTRY = InstitutionRegistry(
    [
        Institution(COUNTY, Tier.COUNTY, CONSORTIUM, frozenset({PROVINCE})),
        Institution(RIVER, Tier.TOWNSHIP, CONSORTIUM, frozenset({COUNTY})),
        Institution(EAST, Tier.TOWNSHIP, CONSORTIUM, frozenset({COUNTY})),
        Institution(PROVINCE, Tier.PROVINCIAL, CONSORTIUM),
        # Another consortium naming our county hospital must not widen its reach.
        Institution("elsewhere", Tier.TOWNSHIP, "other-county", frozenset({COUNTY})),
    ]
)
POLICY = AccessPolicy(REGISTRY)


def who(
    role: str, institution: str | None = RIVER, consortium: str | None = CONSORTIUM
) -> Principal:
    return Principal(
        user=f"{role}@{institution}",
        roles=frozenset({role}),
        institution=institution,
        consortium=consortium,
    )


# Written out by hand from the rule in the README, not computed from ROLE_REACH.
READ_EXPECTED = {
    # role, home -> institutions it reads
    ("operator", RIVER): {RIVER},
    ("physician", RIVER): {RIVER},
    ("coordinator", RIVER): {RIVER},
    ("expert", RIVER): {RIVER},
    ("operator", COUNTY): {COUNTY},
    ("physician", COUNTY): {COUNTY, RIVER, EAST},
    ("coordinator", COUNTY): {COUNTY, RIVER, EAST},
    ("expert", COUNTY): {COUNTY, RIVER, EAST},
    ("expert", PROVINCE): {PROVINCE, COUNTY},
    ("engineer", COUNTY): set(),
    ("engineer", RIVER): set(),
}


@pytest.mark.parametrize(("role", "home"), sorted(READ_EXPECTED))
def test_reads_reach_own_and_served_institutions_only(role: str, home: str) -> None:
    expected = READ_EXPECTED[(role, home)]
    for owner in (COUNTY, RIVER, EAST, PROVINCE):
        assert POLICY.may(who(role, home), Action.READ, owner, CONSORTIUM) is (owner in expected)
    assert POLICY.readable_institutions(who(role, home)) == frozenset(expected)


@pytest.mark.parametrize("role", ["operator", "physician", "coordinator", "expert"])
@pytest.mark.parametrize("home", [RIVER, COUNTY, PROVINCE])
def test_nobody_writes_into_another_institution(role: str, home: str) -> None:
    for owner in (COUNTY, RIVER, EAST, PROVINCE):
        assert POLICY.may(who(role, home), Action.WRITE, owner, CONSORTIUM) is (owner == home)
    assert POLICY.writable_institutions(who(role, home)) == {home}


def test_engineers_touch_no_patient_data() -> None:
    engineer = who("engineer", COUNTY)
    assert not POLICY.may_at_all(engineer, Action.READ)
    assert not POLICY.may_at_all(engineer, Action.WRITE)
    with pytest.raises(Forbidden):
        POLICY.require_any(engineer, Action.READ)


@pytest.mark.parametrize("role", ["admin", "service"])
def test_admin_and_service_reach_everything(role: str) -> None:
    for action in Action:
        assert POLICY.institutions(who(role, COUNTY), action) is None
        assert POLICY.may(who(role, None, None), action, "elsewhere", "other-county")


def test_the_widest_role_wins() -> None:
    both = Principal("x", frozenset({"engineer", "physician"}), COUNTY, CONSORTIUM)
    assert POLICY.reach(both, Action.READ) is Reach.SERVED
    assert POLICY.reach(both, Action.WRITE) is Reach.OWN


def test_served_by_never_crosses_consortia() -> None:
    assert "elsewhere" not in (POLICY.readable_institutions(who("expert", COUNTY)) or ())
    assert not POLICY.may(who("expert", COUNTY), Action.READ, "elsewhere", "other-county")


def test_a_caller_of_another_consortium_is_refused_even_with_the_same_institution_id() -> None:
    stranger = who("operator", RIVER, "other-county")
    assert not POLICY.may(stranger, Action.READ, RIVER, CONSORTIUM)
    assert POLICY.may(stranger, Action.READ, RIVER, None)


def test_without_institution_or_unknown_role_nothing_is_reached() -> None:
    assert POLICY.readable_institutions(who("physician", None)) == frozenset()
    assert not POLICY.may(who("physician", None), Action.READ, RIVER, CONSORTIUM)
    nobody = Principal("x", frozenset(), RIVER, CONSORTIUM)
    assert not POLICY.may(nobody, Action.READ, RIVER, CONSORTIUM)
    assert not POLICY.may(who("operator"), Action.READ, None, CONSORTIUM)


def test_without_a_registry_served_collapses_to_own() -> None:
    policy = AccessPolicy.from_settings(AccessSettings())
    assert policy.readable_institutions(who("expert", COUNTY)) == {COUNTY}
    assert not policy.may(who("expert", COUNTY), Action.READ, RIVER, CONSORTIUM)


def test_registry_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "institutions.json"
    path.write_text(json.dumps(REGISTRY.to_dict()))
    policy = AccessPolicy.from_settings(AccessSettings(institutions_file=path))
    assert policy.readable_institutions(who("expert", COUNTY)) == {COUNTY, RIVER, EAST}
    assert len(policy.registry) == 5


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"institutions": "x"},
        {"institutions": [{"id": "a", "tier": "village", "consortium": "c"}]},
        {"institutions": [{"id": "a", "tier": "county"}]},
        {"institutions": [{"id": "a", "tier": "county", "consortium": "c", "served_by": "b"}]},
        {"institutions": [{"id": "a", "tier": "county", "consortium": "c"}] * 2},
    ],
)
def test_malformed_registry_is_refused_by_name(raw: object, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="institution"):
        AccessPolicy.from_file(path)


def test_missing_registry_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read institution registry"):
        AccessPolicy.from_file(tmp_path / "absent.json")


def test_reachable_is_what_queries_filter_on() -> None:
    reach = POLICY.reachable(who("expert", COUNTY), Action.READ)
    assert reach.institutions == {COUNTY, RIVER, EAST} and reach.consortium == CONSORTIUM
    assert reach.admits(RIVER, CONSORTIUM) and reach.admits(RIVER)
    assert not reach.admits(RIVER, "other-county") and not reach.admits(None)
    assert POLICY.reachable(who("admin", COUNTY), Action.WRITE).everything
