"""Read scope: what each caller may see, as the listing query filters it."""

from __future__ import annotations

from sonobridge.common.auth import Principal
from sonobridge.reporting.adapters.policy_file import read_policy
from sonobridge.reporting.domain.access import ReadScope, may_view, read_scope

POLICY = read_policy(None)


def _who(roles: set[str], institution: str | None = "township-a") -> Principal:
    return Principal(user="u", roles=frozenset(roles), institution=institution)


def test_admins_see_everything_and_callers_without_a_home_see_nothing():
    assert read_scope(_who({"admin"}), POLICY.worklists) == ReadScope(everything=True)
    assert read_scope(_who({"operator"}, None), POLICY.worklists) == ReadScope()
    assert read_scope(_who({"engineer"}), POLICY.worklists) == ReadScope()


def test_experts_see_county_and_provincial_worklists_of_every_institution_plus_their_own():
    scope = read_scope(_who({"expert"}, "county-hospital"), POLICY.worklists)
    assert scope.institution == "county-hospital"
    assert {"county-thyroid", "provincial"} <= scope.worklists
    assert "rescan" not in scope.worklists and "self-confirm" not in scope.worklists
    assert scope.admits("county-thyroid", "township-b")
    assert not scope.admits("self-confirm", "township-b")


def test_the_scope_agrees_with_may_view_on_every_worklist_role_and_institution():
    callers = [
        _who(roles, inst)
        for roles in ({"physician"}, {"expert"}, {"coordinator"}, {"operator"}, {"service"})
        for inst in ("township-a", "township-b", None)
    ]
    for caller in callers:
        scope = read_scope(caller, POLICY.worklists)
        for spec in POLICY.worklists:
            for institution in ("township-a", "township-b"):
                assert scope.admits(spec.name, institution) == may_view(caller, spec, institution)
