"""Use cases of the inference core; transports call these and map domain errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sonobridge.inference.domain.probe_health import ProbeHealthAssessment, assess_probe_health
from sonobridge.inference.domain.quality import QualityVerdict, judge_cine, judge_quality
from sonobridge.inference.imaging.decode import FrameSampling, decode_image
from sonobridge.inference.imaging.preprocess import to_tensor
from sonobridge.inference.runtime.registry import ModelRegistry

QUALITY_MODEL = "image-quality"
PROBE_HEALTH_MODEL = "probe-health"


@dataclass(frozen=True)
class QualityCheck:
    """The quality verdict for an image or cine, per sampled frame and overall."""

    verdict: QualityVerdict
    frames: list[QualityVerdict]
    frame_indices: list[int]
    model: str
    model_version: str


async def check_quality(
    data: bytes, registry: ModelRegistry, sampling: FrameSampling | None = None
) -> QualityCheck:
    """Decode a JPEG/PNG/DICOM instance and judge whether it must be re-acquired."""
    decoded = decode_image(data, sampling)
    return await check_quality_frames(decoded.frames, registry, decoded.frame_indices)


async def check_quality_frames(
    frames: np.ndarray, registry: ModelRegistry, frame_indices: list[int] | None = None
) -> QualityCheck:
    """Judge grayscale uint8 frames (N, H, W) with the image-quality model."""
    model = registry.get(QUALITY_MODEL)
    out = await registry.infer(QUALITY_MODEL, to_tensor(frames, model.input_spec))
    threshold = float(model.card.thresholds["rescan_if_acceptable_below"])
    verdicts = [judge_quality(p, model.card.labels, threshold) for p in out["probabilities"]]
    return QualityCheck(
        judge_cine(verdicts),
        verdicts,
        frame_indices or list(range(len(verdicts))),
        model.card.name,
        model.card.version,
    )


async def assess_exam_probe_health(
    frames: np.ndarray, registry: ModelRegistry
) -> tuple[ProbeHealthAssessment, np.ndarray, str]:
    """Score every frame of an exam for dead elements and decide for the exam."""
    model = registry.get(PROBE_HEALTH_MODEL)
    out = await registry.infer(PROBE_HEALTH_MODEL, to_tensor(frames, model.input_spec))
    scores = out["probabilities"][:, 0]
    t = model.card.thresholds
    return (
        assess_probe_health(scores, float(t["frame"]), float(t["exam"])),
        scores,
        model.card.version,
    )
