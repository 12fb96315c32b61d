"""Image-quality verdicts: acceptable or rescan, with the reason and how sure the model is."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QualityVerdict:
    """The quality decision for one frame."""

    acceptable: bool
    reason: str | None
    confidence: float
    probabilities: dict[str, float]


def judge_quality(
    probabilities: np.ndarray, labels: tuple[str, ...], rescan_if_acceptable_below: float
) -> QualityVerdict:
    """Turn one frame's calibrated class probabilities into a verdict."""
    probs = {label: float(p) for label, p in zip(labels, probabilities, strict=True)}
    p_ok = probs[labels[0]]
    acceptable = p_ok >= rescan_if_acceptable_below
    faults = {k: v for k, v in probs.items() if k != labels[0]}
    reason = None if acceptable else max(faults, key=faults.__getitem__)
    confidence = p_ok if acceptable else 1.0 - p_ok
    return QualityVerdict(acceptable, reason, confidence, probs)


def judge_cine(verdicts: list[QualityVerdict]) -> QualityVerdict:
    """Summarise the sampled frames of a cine: acceptable when most frames are."""
    if not verdicts:
        raise ValueError("no frames to judge")
    good = [v for v in verdicts if v.acceptable]
    bad = [v for v in verdicts if not v.acceptable]
    acceptable = len(good) >= len(bad)
    pool = good if acceptable else bad
    reasons = [v.reason for v in bad if v.reason]
    reason = None if acceptable else max(set(reasons), key=reasons.count)
    labels = verdicts[0].probabilities.keys()
    mean = {k: float(np.mean([v.probabilities[k] for v in verdicts])) for k in labels}
    return QualityVerdict(acceptable, reason, float(np.mean([v.confidence for v in pool])), mean)
