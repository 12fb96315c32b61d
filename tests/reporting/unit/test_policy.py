"""Routing policy: validation at start-up and rule evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sonobridge.reporting.adapters.policy_file import PolicyError, read_policy
from sonobridge.reporting.domain.policy import (
    AiFinding,
    ExamFacts,
    Priority,
    Route,
    audit_draw,
    load_policy,
    route_exam,
)

DEFAULT = yaml.safe_load(
    (
        Path(__file__).parents[3]
        / "services/reporting/src/sonobridge/reporting/policy/default.yaml"
    ).read_text(encoding="utf-8")
)


def _facts(**kw) -> ExamFacts:
    base = dict(
        exam_id="e1",
        exam_type="thyroid",
        institution="township-a",
        operator="nurse-li",
        inference_status="completed",
        quality_acceptable=True,
        quality_score=0.9,
        findings=(),
    )
    base.update(kw)
    return ExamFacts(**base)


def _f(code: str, conf: float, abnormal: bool = False) -> AiFinding:
    return AiFinding(code, code, conf, conf < 0.8, abnormal, "m", "1")


def test_the_shipped_policy_loads():
    policy = read_policy()
    assert policy.version == DEFAULT["version"]
    assert policy.target(Priority.URGENT).total_seconds() == 15 * 60


def test_poor_quality_goes_back_to_the_operator_for_a_rescan():
    routing = route_exam(read_policy(), _facts(quality_acceptable=False, quality_score=0.2))
    assert routing.route is Route.RESCAN and routing.worklist == "rescan"
    assert "quality score 0.20" in routing.reason


def test_a_critical_finding_is_urgent_whatever_else_holds():
    routing = route_exam(
        read_policy(), _facts(exam_type="obstetric", findings=[_f("34801009", 0.5, True)])
    )
    assert (routing.route, routing.worklist, routing.priority) == (
        Route.URGENT,
        "county-urgent",
        Priority.URGENT,
    )


def test_abnormal_and_low_confidence_go_to_the_specialty_worklist():
    policy = read_policy()
    abnormal = route_exam(policy, _facts(exam_type="kidney", findings=[_f("x", 0.95, True)]))
    assert (abnormal.worklist, abnormal.priority) == ("county-abdominal", Priority.PRIORITY)
    low = route_exam(policy, _facts(exam_type="carotid", findings=[_f("plaque", 0.55)]))
    assert (low.worklist, low.priority, low.rule) == (
        "county-vascular",
        Priority.ROUTINE,
        "low-confidence",
    )
    assert "'plaque' confidence 0.55" in low.reason


def test_missing_ai_goes_to_an_expert_with_priority():
    routing = route_exam(read_policy(), _facts(inference_status="missing", quality_acceptable=None))
    assert (routing.route, routing.priority, routing.rule) == (
        Route.EXPERT,
        Priority.PRIORITY,
        "ai-unavailable",
    )


def test_confident_normal_by_a_credentialed_operator_is_self_confirmed_with_an_audit_sample():
    doc = {
        **DEFAULT,
        "credentials": {"self-confirm": [f"op-{n}" for n in range(400)]},
        "self_confirm_audit_rate": 0.25,
    }
    policy = load_policy(doc)
    routings = [
        route_exam(
            policy, _facts(exam_id=f"exam-{n}", operator=f"op-{n}", findings=[_f("normal", 0.97)])
        )
        for n in range(400)
    ]
    assert {r.route for r in routings} == {Route.SELF_CONFIRM}
    sampled = sum(r.audit_sampled for r in routings)
    assert 60 <= sampled <= 140
    # The draw is fixed per exam: a redelivery samples the same way.
    assert audit_draw("exam-1", policy.version) == audit_draw("exam-1", policy.version)
    uncredentialed = route_exam(policy, _facts(operator="stranger", findings=[_f("n", 0.97)]))
    assert uncredentialed.route is Route.EXPERT


def test_the_first_matching_rule_wins():
    doc = {
        **DEFAULT,
        "rules": [
            {
                "name": "township-b-provincial",
                "match": {"institutions": ["township-b"]},
                "route": "provincial",
                "worklist": "provincial",
                "priority": "priority",
                "reason": "pilot",
            },
            *DEFAULT["rules"],
        ],
    }
    policy = load_policy(doc)
    assert route_exam(policy, _facts(institution="township-b")).worklist == "provincial"
    assert route_exam(policy, _facts(institution="township-a")).worklist == "county-thyroid"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"targets_minutes": {"urgent": 15, "routine": 60}}, "targets_minutes lacks"),
        ({"rules": DEFAULT["rules"][:-1]}, "last rule must match everything"),
        ({"audit_worklist": "nowhere"}, "audit_worklist"),
        ({"self_confirm_audit_rate": 1.5}, "self_confirm_audit_rate"),
        (
            {
                "rules": [
                    {
                        "name": "x",
                        "route": "expert",
                        "worklist": "county-{exam_type}",
                        "reason": "r",
                    }
                ]
            },
            "is not defined",
        ),
        (
            {
                "rules": [
                    {
                        "name": "x",
                        "match": {"exam_types": ["brain"]},
                        "route": "expert",
                        "worklist": "provincial",
                        "reason": "r",
                    },
                    DEFAULT["rules"][-1],
                ]
            },
            "unknown exam types",
        ),
        (
            {
                "worklists": [
                    *DEFAULT["worklists"],
                    {"name": "loop-a", "tier": "county", "next_tier": "loop-b"},
                    {"name": "loop-b", "tier": "county", "next_tier": "loop-a"},
                ]
            },
            "loops",
        ),
        (
            {
                "rules": [
                    {
                        "name": "x",
                        "match": {"quality_acceptable": False, "colour": "red"},
                        "route": "rescan",
                        "worklist": "rescan",
                        "reason": "r",
                    },
                    DEFAULT["rules"][-1],
                ]
            },
            "colour",
        ),
    ],
)
def test_an_invalid_policy_is_refused_at_start_up_naming_the_problem(tmp_path, change, message):
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({**DEFAULT, **change}), encoding="utf-8")
    with pytest.raises(PolicyError, match=message):
        read_policy(path)


def test_a_policy_file_that_is_not_yaml_is_refused(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("version: [unclosed", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        read_policy(path)
