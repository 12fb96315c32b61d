"""Shadow versions: run them beside the served ones, and compare both against expert labels."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from sonobridge.common.auth import Principal
from sonobridge.common.problems import InvalidInput, Unavailable
from sonobridge.inference.domain.comparison import (
    SERVING,
    SHADOW,
    VersionComparison,
    compare_versions,
)
from sonobridge.inference.domain.exams import InstanceVerdict
from sonobridge.inference.domain.model_card import ModelCard
from sonobridge.inference.domain.quality import QualityCheck
from sonobridge.inference.domain.validation import (
    GATING_MODELS,
    DeviceModel,
    ExpertLabel,
    ValidationPolicy,
)
from sonobridge.inference.handlers import Dependencies
from sonobridge.inference.handlers.quality import (
    PROBE_HEALTH_MODEL,
    probe_health,
    quality_check,
)
from sonobridge.inference.imaging.preprocess import to_tensor
from sonobridge.inference.metrics import InferenceMetrics
from sonobridge.inference.ports import ServedModel, VersionComparisons

log = logging.getLogger(__name__)


def judge_instance(
    deps: Dependencies,
    sop_instance_uid: str,
    device: DeviceModel,
    frames: np.ndarray,
    served: tuple[QualityCheck, ServedModel, np.ndarray],
) -> list[InstanceVerdict]:
    """Return the served versions' verdicts of an instance and those of every shadow version.

    `served` is the served quality check, the served probe-health model and its scores of
    these frames. A shadow version that fails is logged and counted; the exam goes on.
    """
    quality, probe, probe_scores = served

    def verdict(card: ModelCard, stage: str, flagged: bool, reason: str | None) -> InstanceVerdict:
        return InstanceVerdict(
            card.name, card.version, stage, sop_instance_uid, device.key, flagged, reason
        )

    probe_flag = probe_health(probe, probe_scores).dead_elements_suspected
    found = [
        InstanceVerdict(
            quality.model,
            quality.model_version,
            SERVING,
            sop_instance_uid,
            device.key,
            not quality.verdict.acceptable,
            quality.verdict.reason,
        ),
        verdict(probe.card, SERVING, probe_flag, "dead_elements" if probe_flag else None),
    ]
    served_card = deps.models.get(quality.model, quality.model_version).card
    reused = {
        quality.model: (served_card, _probabilities(served_card, quality)),
        probe.card.name: (probe.card, np.asarray(probe_scores)[:, None]),
    }
    for name in GATING_MODELS:
        for version in deps.models.shadow_versions(name):
            started = time.perf_counter()
            try:
                model = deps.models.get(name, version)
                out = _outputs(deps, model, frames, reused.get(name))
                found.append(verdict(model.card, SHADOW, *_flag(model, out, quality)))
            except Exception:
                # A shadow version is never allowed to fail the served exam.
                log.exception("shadow version %s %s failed on an instance", name, version)
                deps.metrics.errors.labels(name, "shadow").inc()
                continue
            deps.metrics.stage_seconds.labels(name, "shadow").observe(time.perf_counter() - started)
    return found


def _outputs(
    deps: Dependencies,
    model: ServedModel,
    frames: np.ndarray,
    served: tuple[ModelCard, np.ndarray] | None,
) -> dict[str, np.ndarray]:
    card = model.card
    if served is not None and _same_network(served[0], card):
        # A recalibration (same weights, other thresholds): the served outputs are its own.
        return {"probabilities": served[1]}
    return deps.models.infer(card.name, to_tensor(frames, model.input_spec), card.version)


def _same_network(served: ModelCard, other: ModelCard) -> bool:
    same_input = served.raw.get("input") == other.raw.get("input")
    return bool(served.sha256) and served.sha256 == other.sha256 and same_input


def _probabilities(card: ModelCard, check: QualityCheck) -> np.ndarray:
    return np.asarray([[f.probabilities[label] for label in card.labels] for f in check.frames])


def _flag(
    model: ServedModel, out: dict[str, np.ndarray], quality: QualityCheck
) -> tuple[bool, str | None]:
    if model.card.name == PROBE_HEALTH_MODEL:
        flagged = probe_health(model, np.asarray(out["probabilities"])[:, 0])
        suspected = flagged.dead_elements_suspected
        return suspected, "dead_elements" if suspected else None
    check = quality_check(model, out["probabilities"], quality.frame_indices)
    return not check.verdict.acceptable, check.verdict.reason


def report_comparison(
    comparisons: VersionComparisons,
    card: Callable[[str, str], ModelCard],
    model_name: str,
    serving_version: str,
    device: DeviceModel | None = None,
) -> VersionComparison:
    """Compare a gating model's versions per device model on the labelled live instances."""
    _gating(model_name)

    def policy_of(version: str) -> ValidationPolicy:
        return ValidationPolicy.of_card(card(model_name, version).raw)

    labelled = comparisons.labelled(model_name, device)
    return compare_versions(model_name, serving_version, labelled, policy_of)


def compare_served_versions(
    deps: Dependencies, principal: Principal, model_name: str
) -> VersionComparison:
    """Return the live comparison of a gating model's versions (admins); export its figures."""
    principal.require_role("admin")
    _gating(model_name)
    serving = deps.models.get(model_name).card.version
    found = report_comparison(_store(deps), deps.models.registry.card, model_name, serving)
    show_comparison(deps.metrics, found)
    return found


def follow_labels(deps: Dependencies, labels: Sequence[ExpertLabel]) -> None:
    """Join newly kept labels to the stored verdicts and export the figures they change."""
    if deps.comparisons is None:
        return
    for name, device in sorted({(lb.model_name, lb.device) for lb in labels}, key=str):
        if name not in GATING_MODELS:
            continue
        serving = deps.models.get(name).card.version
        card = deps.models.registry.card
        found = report_comparison(deps.comparisons, card, name, serving, device)
        show_comparison(deps.metrics, found)


def show_comparison(metrics: InferenceMetrics, found: VersionComparison) -> None:
    """Set the comparison gauges: labelled instances, false rescans, faults caught, agreement."""
    for device in found.devices:
        for f in device.versions:
            labels = (found.model_name, f.version, f.stage, device.device.key)
            for outcome, count in (
                ("labelled", f.labelled),
                ("false_rescan", f.false_rescans),
                ("fault_caught", f.faults_caught),
            ):
                metrics.comparison_instances.labels(*labels, outcome).set(count)
        for a in device.agreements:
            if a.rate is not None:
                metrics.comparison_agreement.labels(
                    found.model_name, a.version, device.device.key
                ).set(a.rate)


def _gating(name: str) -> None:
    if name not in GATING_MODELS:
        raise InvalidInput(f"{name!r} is not a gating model ({', '.join(GATING_MODELS)})")


def _store(deps: Dependencies) -> VersionComparisons:
    if deps.comparisons is None:
        raise Unavailable("this replica keeps no version comparisons")
    return deps.comparisons
