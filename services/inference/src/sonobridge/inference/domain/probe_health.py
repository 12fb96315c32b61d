"""Exam-level probe health: dead elements persist across frames, so aggregate per exam."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ProbeHealthAssessment:
    """Whether an exam's frames point to dead transducer elements."""

    dead_elements_suspected: bool
    score: float
    frames: int
    frames_flagged: int


def assess_probe_health(
    frame_scores: list[float] | np.ndarray, frame_threshold: float, exam_threshold: float
) -> ProbeHealthAssessment:
    """Aggregate per-frame dead-element probabilities into one exam-level decision.

    The mean suits a fault that is present in every frame: a single blurred or dark frame
    cannot raise it alone, and a dead element is not hidden by one noisy frame.
    """
    scores = np.asarray(frame_scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("no frame scores to aggregate")
    score = float(scores.mean())
    return ProbeHealthAssessment(
        dead_elements_suspected=score >= exam_threshold,
        score=score,
        frames=int(scores.size),
        frames_flagged=int((scores >= frame_threshold).sum()),
    )
