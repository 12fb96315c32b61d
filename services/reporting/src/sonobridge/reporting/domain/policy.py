"""Routing policy: declarative, versioned rules that send each exam to one worklist."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

EXAM_TYPES = (
    "carotid",
    "thyroid",
    "abdomen",
    "kidney",
    "obstetric",
    "cardiac",
    "liver",
    "other",
)


class Route(StrEnum):
    """Where an exam goes after AI."""

    RESCAN = "rescan"
    SELF_CONFIRM = "self_confirm"
    EXPERT = "expert"
    URGENT = "urgent"
    PROVINCIAL = "provincial"


class Priority(StrEnum):
    """Read priority; each has a turnaround target."""

    ROUTINE = "routine"
    PRIORITY = "priority"
    URGENT = "urgent"


PRIORITY_RANK = {Priority.URGENT: 0, Priority.PRIORITY: 1, Priority.ROUTINE: 2}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    """Conditions of a rule; all given conditions must hold, an empty match matches everything."""

    exam_types: list[str] = Field(default_factory=list)
    institutions: list[str] = Field(default_factory=list)
    inference_status: list[str] = Field(default_factory=list)
    quality_acceptable: bool | None = None
    quality_score_below: float | None = Field(None, ge=0, le=1)
    any_abnormal: bool | None = None
    any_low_confidence: bool | None = None
    # Holds when the least confident finding is below this (no findings: never).
    min_confidence_below: float | None = Field(None, ge=0, le=1)
    # Holds when every finding is at least this confident (no findings: always).
    all_confidence_at_least: float | None = Field(None, ge=0, le=1)
    finding_codes: list[str] = Field(default_factory=list)
    operator_credentials: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_exam_types(self) -> Match:
        unknown = sorted(set(self.exam_types) - set(EXAM_TYPES))
        if unknown:
            raise ValueError(f"unknown exam types {unknown}; known: {list(EXAM_TYPES)}")
        return self


class Rule(_Strict):
    """First matching rule wins: it names the route, worklist and priority."""

    name: str
    match: Match = Match()
    route: Route
    # May use {specialty} and {exam_type}; expanded per exam.
    worklist: str
    priority: Priority = Priority.ROUTINE
    reason: str


class Tier(StrEnum):
    """Level of care a worklist belongs to."""

    TOWNSHIP = "township"
    COUNTY = "county"
    PROVINCIAL = "provincial"


class WorklistSpec(_Strict):
    """A worklist: who may sign from it and where its unsigned reads escalate."""

    name: str
    tier: Tier
    specialty: str | None = None
    signer_roles: list[str] = Field(default_factory=lambda: ["expert"])
    # Reads stay with the exam's own institution (self-confirm by its township physician).
    institution_scoped: bool = False
    next_tier: str | None = None
    # Read-only lists (rescan requests) have no reader and no clock.
    clocked: bool = True


class Policy(_Strict):
    """A complete, validated routing policy."""

    version: str
    targets_minutes: dict[Priority, int]
    backup_minutes: dict[Priority, int]
    self_confirm_audit_rate: float = Field(ge=0, le=1)
    audit_worklist: str
    inference_wait_minutes: int = Field(ge=1)
    specialties: dict[str, str]
    credentials: dict[str, list[str]] = Field(default_factory=dict)
    worklists: list[WorklistSpec]
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        for table, name in (
            (self.targets_minutes, "targets_minutes"),
            (self.backup_minutes, "backup_minutes"),
        ):
            missing = [p.value for p in Priority if p not in table]
            if missing:
                raise ValueError(f"{name} lacks priorities {missing}")
            if any(v <= 0 for v in table.values()):
                raise ValueError(f"{name} must be positive minutes")
        missing_types = [t for t in EXAM_TYPES if t not in self.specialties]
        if missing_types:
            raise ValueError(f"specialties lacks exam types {missing_types}")
        names = [w.name for w in self.worklists]
        if len(set(names)) != len(names):
            raise ValueError("worklist names must be unique")
        known = set(names)
        for w in self.worklists:
            if w.next_tier is not None and w.next_tier not in known:
                raise ValueError(f"worklist {w.name}: next_tier {w.next_tier!r} is not a worklist")
        for w in self.worklists:
            seen = {w.name}
            step = w
            while step.next_tier is not None:
                if step.next_tier in seen:
                    raise ValueError(f"worklist {w.name}: next_tier chain loops")
                seen.add(step.next_tier)
                step = self.worklist(step.next_tier)
        if self.audit_worklist not in known:
            raise ValueError(f"audit_worklist {self.audit_worklist!r} is not a worklist")
        for rule in self.rules:
            types = rule.match.exam_types or list(EXAM_TYPES)
            for exam_type in types:
                name = self._expand(rule.worklist, exam_type)
                if name not in known:
                    raise ValueError(
                        f"rule {rule.name}: worklist {name!r} ({exam_type}) is not defined"
                    )
            for credential in rule.match.operator_credentials:
                if credential not in self.credentials:
                    raise ValueError(f"rule {rule.name}: unknown credential {credential!r}")
        catch_all = self.rules[-1].match
        if catch_all != Match():
            raise ValueError("the last rule must match everything (an empty match)")
        return self

    def _expand(self, template: str, exam_type: str) -> str:
        return template.format(exam_type=exam_type, specialty=self.specialties[exam_type])

    def worklist(self, name: str) -> WorklistSpec:
        """Return a worklist by name; KeyError when the policy has none."""
        for w in self.worklists:
            if w.name == name:
                return w
        raise KeyError(name)

    def target(self, priority: Priority) -> timedelta:
        """Return the turnaround target of a priority."""
        return timedelta(minutes=self.targets_minutes[priority])

    def backup_grace(self, priority: Priority) -> timedelta:
        """Return how long the backup reader has before the next tier takes over."""
        return timedelta(minutes=self.backup_minutes[priority])


def load_policy(document: dict[str, Any]) -> Policy:
    """Validate a parsed policy document; raises pydantic.ValidationError naming the field."""
    return Policy.model_validate(document)


@dataclass(frozen=True)
class AiFinding:
    """An AI finding as the policy sees it."""

    code: str
    display: str
    confidence: float
    low_confidence: bool
    abnormal: bool
    model_name: str = ""
    model_version: str = ""


@dataclass(frozen=True)
class ExamFacts:
    """Everything routing may look at for one exam."""

    exam_id: str
    exam_type: str
    institution: str
    operator: str
    inference_status: str  # completed, partial, failed, missing
    quality_acceptable: bool | None = None
    quality_score: float | None = None
    findings: Sequence[AiFinding] = ()


@dataclass(frozen=True)
class Routing:
    """The policy's decision for one exam."""

    route: Route
    worklist: str
    priority: Priority
    rule: str
    reason: str
    policy_version: str
    audit_sampled: bool

    def due_at(self, policy: Policy, routed_at: datetime) -> datetime:
        """Return the turnaround deadline for a read routed at `routed_at`."""
        return routed_at + policy.target(self.priority)


def audit_draw(exam_id: str, policy_version: str) -> float:
    """Return a uniform number in [0, 1) fixed per exam, so a redelivery draws the same sample."""
    digest = hashlib.sha256(f"{policy_version}:{exam_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _matches(policy: Policy, m: Match, facts: ExamFacts) -> bool:
    findings = list(facts.findings)
    checks = [
        not m.exam_types or facts.exam_type in m.exam_types,
        not m.institutions or facts.institution in m.institutions,
        not m.inference_status or facts.inference_status in m.inference_status,
        m.quality_acceptable is None or facts.quality_acceptable is m.quality_acceptable,
        m.quality_score_below is None
        or (facts.quality_score is not None and facts.quality_score < m.quality_score_below),
        m.any_abnormal is None or any(f.abnormal for f in findings) is m.any_abnormal,
        m.any_low_confidence is None
        or any(f.low_confidence for f in findings) is m.any_low_confidence,
        m.min_confidence_below is None
        or (bool(findings) and min(f.confidence for f in findings) < m.min_confidence_below),
        m.all_confidence_at_least is None
        or all(f.confidence >= m.all_confidence_at_least for f in findings),
        not m.finding_codes or any(f.code in m.finding_codes for f in findings),
        not m.operator_credentials
        or any(facts.operator in policy.credentials[c] for c in m.operator_credentials),
    ]
    return all(checks)


def _explain(rule: Rule, facts: ExamFacts) -> str:
    details: list[str] = []
    m = rule.match
    if m.finding_codes:
        hits = [f.display or f.code for f in facts.findings if f.code in m.finding_codes]
        details.append("critical finding " + ", ".join(f"'{h}'" for h in hits))
    elif m.any_abnormal:
        hits = [f.display or f.code for f in facts.findings if f.abnormal]
        details.append("abnormal finding " + ", ".join(f"'{h}'" for h in hits))
    if m.any_low_confidence or m.min_confidence_below is not None:
        low = [f for f in facts.findings if f.low_confidence] or sorted(
            facts.findings, key=lambda f: f.confidence
        )[:1]
        details.extend(f"'{f.display or f.code}' confidence {f.confidence:.2f}" for f in low)
    if m.quality_acceptable is False and facts.quality_score is not None:
        details.append(f"quality score {facts.quality_score:.2f}")
    return rule.reason + (f" ({'; '.join(details)})" if details else "")


def route_exam(policy: Policy, facts: ExamFacts) -> Routing:
    """Apply the first matching rule; self-confirm exams may be drawn for an expert audit."""
    if facts.exam_type not in EXAM_TYPES:
        facts = ExamFacts(**{**facts.__dict__, "exam_type": "other"})
    for rule in policy.rules:
        if _matches(policy, rule.match, facts):
            sampled = (
                rule.route is Route.SELF_CONFIRM
                and audit_draw(facts.exam_id, policy.version) < policy.self_confirm_audit_rate
            )
            return Routing(
                route=rule.route,
                worklist=policy._expand(rule.worklist, facts.exam_type),
                priority=rule.priority,
                rule=rule.name,
                reason=_explain(rule, facts),
                policy_version=policy.version,
                audit_sampled=sampled,
            )
    raise AssertionError("a validated policy always ends with a catch-all rule")
