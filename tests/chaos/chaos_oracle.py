"""The calm-run oracle: each planned exam's outcome from the product's own models and rules.

Before the load starts, every planned exam goes through the inference service's `analyse_exam`
with the packaged models the cluster pins, in this process and without servers; its result takes
the InferenceCompleted event's round trip, and reporting's routing policy, draft template and
follow-up terms decide the route, worklist and alert. What a calm run gives an exam is what the
chaos run must give it: the auditor checks that, not what the load's designer hoped for.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydicom
from prometheus_client import CollectorRegistry

from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.common.objects.ports import ObjectStore
from sonobridge.inference.adapters.messages import inference_completed
from sonobridge.inference.domain.exams import CompletedExam, ExamInstance, InferenceResult
from sonobridge.inference.handlers import Dependencies
from sonobridge.inference.handlers.exams import analyse_exam
from sonobridge.inference.imaging.decode import FrameSampling
from sonobridge.inference.metrics import InferenceMetrics
from sonobridge.inference.modules.loader import load_clinical_modules
from sonobridge.inference.runtime.providers import SessionConfig
from sonobridge.inference.runtime.registry import ModelRegistry, packaged_models
from sonobridge.inference.runtime.server import ModelServer
from sonobridge.inference.settings import InferenceSettings
from sonobridge.maintenance.domain.health import ProbeFinding
from sonobridge.maintenance.settings import ProbeHealthSettings
from sonobridge.node.scenario import Expect, PlannedExam
from sonobridge.reporting.adapters.messages import consumed
from sonobridge.reporting.adapters.policy_file import read_policy
from sonobridge.reporting.domain.events import InferenceCompleted
from sonobridge.reporting.domain.followup import TermSpec, match_terms
from sonobridge.reporting.domain.policy import ExamFacts, Policy, Route, Routing, route_exam
from sonobridge.reporting.domain.templates import draft_for
from sonobridge.reporting.handlers.routing import ai_findings
from sonobridge.reporting.settings import DEFAULT_FOLLOWUP_TERMS

# Maintenance's default: dead elements on several consecutive exams of a probe open a ticket.
RULE = ProbeHealthSettings().rule()
# The simulated expert drafts in English (FlowTracker.sign_read) and agrees with every finding.
DRAFT_LANGUAGE = "en"


@dataclass(frozen=True)
class CalmRead:
    """The primary read a calm run gives an exam: where it goes and the AI it was routed on."""

    route: str
    worklist: str
    priority: str
    inference_status: str
    quality_acceptable: bool | None
    finding_codes: tuple[str, ...]

    def departures(self, view: dict[str, Any]) -> list[str]:
        """How a read's detail view (reporting's REST) differs from the calm run's read."""
        quality = view.get("exam_quality")
        seen = CalmRead(
            route=str(view.get("route")),
            worklist=str(view.get("worklist")),
            priority=str(view.get("priority")),
            inference_status=str(view.get("inference_status")),
            quality_acceptable=bool(quality.get("acceptable")) if quality is not None else None,
            finding_codes=_codes(view.get("ai_findings") or []),
        )
        return [
            f"{name} {getattr(seen, name)!r}, calm run {getattr(self, name)!r}"
            for name in self.__dataclass_fields__
            if getattr(seen, name) != getattr(self, name)
        ]


@dataclass(frozen=True)
class CalmOutcome:
    """What a calm run gives one exam: its routing, and the follow-up terms its report raises."""

    routing: Routing
    followup_terms: tuple[str, ...]
    # Whether maintenance counts this exam's probe-health verdict towards a ticket.
    probe_fault_signal: bool = False
    read: CalmRead | None = None

    @property
    def expect(self) -> Expect:
        """The outcome as the auditor's expectation (a ticket is decided over a probe's exams)."""
        rescan = self.routing.route is Route.RESCAN
        return Expect(
            rescan=rescan,
            worklist=self.routing.worklist,
            followup=bool(self.followup_terms) and not rescan,
        )


def reported(result: InferenceResult) -> InferenceCompleted:
    """The result as reporting consumes it: through the contract's event and back."""
    sent = inference_completed(result)
    message = type(sent)()
    message.ParseFromString(sent.SerializeToString())
    event = consumed(message)
    assert isinstance(event, InferenceCompleted)
    return event


def judge(
    plan: PlannedExam,
    event: InferenceCompleted,
    policy: Policy,
    terms: list[TermSpec],
) -> CalmOutcome:
    """Route the exam as reporting does, and match its signed report's text and codes."""
    quality = event.quality
    facts = ExamFacts(
        exam_id=plan.patient_ref,
        exam_type=plan.exam_type,
        institution=plan.institution,
        operator=plan.operator,
        inference_status=event.status,
        quality_acceptable=bool(quality.get("acceptable", False)) if quality is not None else None,
        quality_score=float(quality.get("score", 0.0)) if quality is not None else None,
        findings=ai_findings(event.findings),
    )
    routing = route_exam(policy, facts)
    # The signed version keeps the draft's findings text and the AI findings the expert agreed
    # with; the expert writes the conclusion.
    draft = draft_for(plan.exam_type, DRAFT_LANGUAGE, ai_findings(event.findings))
    codes = [str(f.get("code", "")) for f in event.findings]
    matched = match_terms([draft.findings_text, plan.expert_conclusion], codes, terms)
    read = CalmRead(
        route=routing.route.value,
        worklist=routing.worklist,
        priority=routing.priority.value,
        inference_status=event.status,
        quality_acceptable=facts.quality_acceptable,
        finding_codes=_codes(event.findings),
    )
    return CalmOutcome(routing, tuple(matched), read=read)


def _codes(findings: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(sorted(str(f.get("code", "")) for f in findings))


def _completed(store: ObjectStore, n: int, plan: PlannedExam) -> CompletedExam:
    instances = []
    for i, data in enumerate(plan.instances):
        sop = str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)
        key = f"oracle/{n}/{i}.dcm"
        store.put(key, io.BytesIO(data), length=len(data), content_type="application/dicom")
        instances.append(ExamInstance(sop, key, hashlib.sha256(data).hexdigest()))
    return CompletedExam(
        plan.study_instance_uid,
        f"oracle-{n}",
        plan.exam_type,
        plan.institution,
        plan.device_serial,
        tuple(instances),
    )


@contextmanager
def serving() -> Iterator[Dependencies]:
    """The inference use cases' dependencies as the cluster builds them, without servers.

    The packaged models the service pins by default, its frame sampling and clinical modules;
    no stored validation states, as on a fresh cluster (each device keeps its card's default).
    """
    cfg = InferenceSettings()
    metrics = InferenceMetrics(CollectorRegistry())
    registry = ModelRegistry(packaged_models(), SessionConfig(), metrics=metrics)
    server = ModelServer(registry)
    try:
        server.load_and_pin(cfg.model_refs())
        with tempfile.TemporaryDirectory(prefix="sonobridge-oracle-") as scratch:
            yield Dependencies(
                models=server,
                store=LocalDirObjectStore(Path(scratch)),
                metrics=metrics,
                clock=lambda: datetime.now(UTC),
                exam_work=lambda _transaction: None,
                sampling=FrameSampling(cfg.frames_per_instance),
                modules=load_clinical_modules(registry),
            )
    finally:
        server.close()


def calm_outcomes(plans: list[PlannedExam]) -> list[CalmOutcome]:
    """Each exam's calm-run outcome, in order, with the default policy and follow-up terms."""
    policy = read_policy(None)
    terms = [TermSpec(t.term, t.words, t.codes) for t in DEFAULT_FOLLOWUP_TERMS]
    outcomes = []
    with serving() as deps:
        for n, plan in enumerate(plans):
            result = analyse_exam(deps, _completed(deps.store, n, plan), "oracle", lambda _k: None)
            assert result is not None
            outcome = judge(plan, reported(result), policy, terms)
            health = result.probe_health
            signal = RULE.is_fault_signal(
                suspected_fault=health.suspected_fault,
                dead_fraction=health.dead_element_fraction,
            )
            outcomes.append(replace(outcome, probe_fault_signal=signal))
    return outcomes


def ticketed_probes(plans: list[PlannedExam], outcomes: list[CalmOutcome]) -> set[str]:
    """The probes maintenance opens a ticket for: fault signals persisting over their exams.

    A calm run makes and answers the exams in the plan's order, a minute apart.
    """
    start = datetime(2026, 1, 5, tzinfo=UTC)
    by_probe: dict[str, list[ProbeFinding]] = {}
    for n, (plan, outcome) in enumerate(zip(plans, outcomes, strict=True)):
        finding = ProbeFinding(
            f"exam-{n}", start + timedelta(minutes=n), (), outcome.probe_fault_signal
        )
        by_probe.setdefault(plan.device_serial, []).append(finding)
    return {serial for serial, found in by_probe.items() if RULE.persists(found)}


def differs(designed: Expect, calm: Expect) -> bool:
    """True when the calm outcome is not the one the load's design aimed for."""
    said = (designed.rescan, designed.followup, designed.ticket_device)
    return said != (calm.rescan, calm.followup, calm.ticket_device) or bool(
        designed.worklist and not designed.rescan and designed.worklist != calm.worklist
    )


@dataclass
class CalmRun:
    """The oracle's answer for a load: where it left the design, and each exam's calm read."""

    departures: list[str]
    reads: dict[str, CalmRead]


def expect_calm_outcomes(plans: list[PlannedExam]) -> CalmRun:
    """Set each exam's expectation to its calm-run outcome; return it with the departures.

    A probe's ticket comes from maintenance's default rule over its exams' verdicts.
    """
    departures = []
    outcomes = calm_outcomes(plans)
    reads = {
        plan.study_instance_uid: outcome.read
        for plan, outcome in zip(plans, outcomes, strict=True)
        if outcome.read is not None
    }
    ticketed = ticketed_probes(plans, outcomes)
    for plan, outcome in zip(plans, outcomes, strict=True):
        calm = outcome.expect
        # Every exam of a ticketed probe that counted towards it names the probe.
        ticket = plan.device_serial if outcome.probe_fault_signal else None
        ticket = ticket if plan.device_serial in ticketed else None
        calm = Expect(calm.rescan, calm.worklist, calm.followup, ticket)
        if differs(plan.expect, calm):
            why = outcome.routing.rule + "".join(f", {t}" for t in outcome.followup_terms)
            departures.append(
                f"{plan.label}: designed {_said(plan.expect)}, calm run gives {_said(calm)} ({why})"
            )
        plan.expect = calm
    return CalmRun(departures, reads)


def _said(expect: Expect) -> str:
    route = "rescan" if expect.rescan else f"signed on {expect.worklist or 'a county list'}"
    route += " + follow-up alert" if expect.followup else ""
    return route + (f" + ticket on {expect.ticket_device}" if expect.ticket_device else "")
