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


@dataclass(frozen=True)
class DarkColumns:
    """Image columns that stay dark in every frame while their neighbours show tissue."""

    columns: int
    columns_in_view: int

    @property
    def fraction(self) -> float:
        """Return dark columns as a fraction of the columns that show the field of view."""
        return self.columns / self.columns_in_view if self.columns_in_view else 0.0


def count_dark_columns(frames: np.ndarray, ratio: float = 0.5, window: int = 9) -> DarkColumns:
    """Count columns much darker than their neighbourhood in the exam's mean frame.

    Dead elements of a linear array give vertical dark lines that persist across frames, so
    averaging frames removes speckle and keeps them. Sector probes fan the lines out, so this
    column count undercounts them there; the model's score stays the decision.
    """
    arr = np.asarray(frames, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    mean = arr.mean(axis=0)
    # Skip the near field, where reverberation fills dead lines in.
    profile = mean[mean.shape[0] // 5 :].mean(axis=0)
    lit = np.flatnonzero(profile > 0.1 * float(profile.max(initial=0.0)))
    pad = window // 2
    if lit.size == 0 or lit[-1] - lit[0] <= 2 * pad:
        return DarkColumns(0, 0)
    # The view's own border is not a dead element: judge only columns a window inside it.
    first, last = int(lit[0]) + pad, int(lit[-1]) - pad
    padded = np.pad(profile, pad, mode="edge")
    local = np.array([np.median(padded[i : i + window]) for i in range(profile.size)])
    dark = profile[first : last + 1] < ratio * local[first : last + 1]
    return DarkColumns(int(dark.sum()), last - first + 1)
