"""Judge image quality (acceptable or rescan, and why) and score frames for dead elements."""

from __future__ import annotations

import time

import numpy as np

from sonobridge.inference.domain.probe_health import ProbeHealthAssessment, assess_probe_health
from sonobridge.inference.domain.quality import QualityCheck, judge_frames
from sonobridge.inference.handlers import Dependencies
from sonobridge.inference.handlers.serving import decode_upload, preprocess, run_model
from sonobridge.inference.imaging.preprocess import to_tensor
from sonobridge.inference.ports import ModelBatches, ServedModel

QUALITY_MODEL = "image-quality"
PROBE_HEALTH_MODEL = "probe-health"


def quality_check(
    model: ServedModel, probabilities: np.ndarray, frame_indices: list[int]
) -> QualityCheck:
    """Judge the quality model's per-frame probabilities with the card's threshold."""
    card = model.card
    threshold = float(card.thresholds["rescan_if_acceptable_below"])
    verdict, frames, indices = judge_frames(probabilities, card.labels, threshold, frame_indices)
    return QualityCheck(verdict, frames, indices, card.name, card.version)


def probe_health(model: ServedModel, scores: np.ndarray) -> ProbeHealthAssessment:
    """Decide for an exam from its frames' dead-element scores with the card's thresholds."""
    t = model.card.thresholds
    return assess_probe_health(scores, float(t["frame"]), float(t["exam"]))


def assess_quality(
    deps: Dependencies, frames: np.ndarray, frame_indices: list[int], started: float | None = None
) -> QualityCheck:
    """Judge decoded grayscale frames (N, H, W) with the pinned image-quality model."""
    started = time.perf_counter() if started is None else started
    model = deps.models.get(QUALITY_MODEL)
    out = run_model(deps, model, preprocess(deps, model, frames), started)
    return quality_check(model, out["probabilities"], frame_indices)


def check_image_quality(
    deps: Dependencies,
    data: bytes,
    media_type: str,
    frame_index: int = 0,
    *,
    institution: str | None = None,
    operator: str = "",
) -> tuple[QualityCheck, float]:
    """Judge one frame the app just captured; return the verdict and server time in ms."""
    started = time.perf_counter()
    decoded = decode_upload(deps, QUALITY_MODEL, data, media_type, frame_index)
    check = assess_quality(deps, decoded.frames, decoded.frame_indices, started)
    outcome = "acceptable" if check.verdict.acceptable else "rescan"
    deps.metrics.quality_assessments.labels(institution or "", operator, outcome).inc()
    return check, (time.perf_counter() - started) * 1000


async def check_quality_frames(
    frames: np.ndarray, models: ModelBatches, frame_indices: list[int] | None = None
) -> QualityCheck:
    """Judge grayscale uint8 frames (N, H, W) on the caller's loop (model evaluation)."""
    model = models.get(QUALITY_MODEL)
    out = await models.infer(QUALITY_MODEL, to_tensor(frames, model.input_spec))
    return quality_check(model, out["probabilities"], frame_indices or [])


async def assess_exam_probe_health(
    frames: np.ndarray, models: ModelBatches
) -> tuple[ProbeHealthAssessment, np.ndarray, str]:
    """Score every frame of an exam for dead elements and decide for the exam."""
    model = models.get(PROBE_HEALTH_MODEL)
    out = await models.infer(PROBE_HEALTH_MODEL, to_tensor(frames, model.input_spec))
    scores = out["probabilities"][:, 0]
    return probe_health(model, scores), scores, model.card.version
