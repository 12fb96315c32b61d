"""Read scope: what each caller may see, as the listing query filters it."""

from __future__ import annotations

from sonobridge.common.access import AccessPolicy, Action, Institution, InstitutionRegistry, Tier
from sonobridge.common.auth import Principal
from sonobridge.reporting.adapters.policy_file import read_policy
from sonobridge.reporting.domain.access import ReadScope, may_view, read_scope

POLICY = read_policy(None)
ACCESS = AccessPolicy(
    InstitutionRegistry(
        [
            Institution("county-hospital", Tier.COUNTY, "pujiang"),
            Institution("township-a", Tier.TOWNSHIP, "pujiang", frozenset({"county-hospital"})),
            Institution("township-b", Tier.TOWNSHIP, "pujiang", frozenset({"county-hospital"})),
        ]
    )
)


def _who(roles: set[str], institution: str | None = "township-a") -> Principal:
    return Principal(user="u", roles=frozenset(roles), institution=institution)


def test_admins_see_everything_and_callers_without_a_home_see_nothing():
    assert read_scope(_who({"admin"}), POLICY.worklists, ACCESS) == ReadScope(everything=True)
    assert read_scope(_who({"operator"}, None), POLICY.worklists, ACCESS) == ReadScope()
    assert read_scope(_who({"engineer"}), POLICY.worklists, ACCESS) == ReadScope()


def test_experts_see_shared_worklists_of_the_institutions_they_serve_plus_their_own():
    scope = read_scope(_who({"expert"}, "county-hospital"), POLICY.worklists, ACCESS)
    assert scope.home == "county-hospital"
    assert scope.institutions == {"county-hospital", "township-a", "township-b"}
    assert scope.worklists is not None
    assert {"county-thyroid", "provincial"} <= scope.worklists
    assert "rescan" not in scope.worklists and "self-confirm" not in scope.worklists
    assert scope.admits("county-thyroid", "township-b")
    assert scope.admits("self-confirm", "county-hospital")
    assert not scope.admits("self-confirm", "township-b")
    assert not scope.admits("county-thyroid", "township-z")


def test_township_readers_see_only_their_own_institution():
    for role in ("physician", "coordinator", "operator", "expert"):
        scope = read_scope(_who({role}, "township-a"), POLICY.worklists, ACCESS)
        assert scope.admits("county-thyroid", "township-a")
        assert not scope.admits("county-thyroid", "township-b")


def test_the_scope_agrees_with_may_view_and_the_common_policy():
    callers = [
        _who(roles, inst)
        for roles in ({"physician"}, {"expert"}, {"coordinator"}, {"operator"}, {"service"})
        for inst in ("township-a", "township-b", "county-hospital", None)
    ]
    for caller in callers:
        scope = read_scope(caller, POLICY.worklists, ACCESS)
        for spec in POLICY.worklists:
            for institution in ("township-a", "township-b", "county-hospital"):
                seen = scope.admits(spec.name, institution)
                assert seen == may_view(caller, spec, institution, ACCESS)
                # The worklist tier may narrow what the common policy allows, never widen it.
                assert not seen or ACCESS.may(caller, Action.READ, institution)
