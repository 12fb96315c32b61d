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


@dataclass(frozen=True)
class QualityCheck:
    """The quality verdict for an image or cine, per sampled frame and overall."""

    verdict: QualityVerdict
    frames: list[QualityVerdict]
    frame_indices: list[int]
    model: str
    model_version: str

    @property
    def assessment(self) -> QualityAssessment:
        """Return what the operator is told about the image or cine."""
        return assess(self.verdict, self.model_version)


def judge_frames(
    probabilities: np.ndarray,
    labels: tuple[str, ...],
    rescan_if_acceptable_below: float,
    frame_indices: list[int],
) -> tuple[QualityVerdict, list[QualityVerdict], list[int]]:
    """Judge every frame's probabilities and the cine as a whole; index frames 0.. if unnamed."""
    verdicts = [judge_quality(p, labels, rescan_if_acceptable_below) for p in probabilities]
    return judge_cine(verdicts), verdicts, frame_indices or list(range(len(verdicts)))


# Reasons the contract names; a model label outside them is reported as "other".
REASONS = ("low_gain", "lost_contact", "dead_elements", "motion_blur", "wrong_depth")

ADVICE = {
    "low_gain": "increase gain",
    "lost_contact": "apply gel and keep the whole probe face on the skin",
    "dead_elements": "dark stripes: report the probe and rescan with another one",
    "motion_blur": "hold the probe and ask the patient to stay still",
    "wrong_depth": "adjust depth so the organ fills the image",
}


@dataclass(frozen=True)
class QualityAssessment:
    """What the operator is told about a frame, an instance or a whole exam."""

    acceptable: bool
    reasons: tuple[str, ...]
    score: float
    confidence: float
    model_version: str
    advice: str


NO_ASSESSMENT = QualityAssessment(False, (), 0.0, 0.0, "", "")


def assess(verdict: QualityVerdict, model_version: str) -> QualityAssessment:
    """Turn a verdict into the assessment shown to the operator, with advice to rescan."""
    reason = verdict.reason
    reasons = () if reason is None else (reason if reason in REASONS else "other",)
    return QualityAssessment(
        acceptable=verdict.acceptable,
        reasons=reasons,
        score=float(verdict.probabilities.get("acceptable", verdict.confidence)),
        confidence=float(verdict.confidence),
        model_version=model_version,
        advice="" if reason is None else ADVICE.get(reason, "rescan"),
    )


def summarise_exam(assessments: list[QualityAssessment]) -> QualityAssessment:
    """Summarise instance assessments for the exam: it is as good as its worst instance."""
    if not assessments:
        return NO_ASSESSMENT
    worst = min(assessments, key=lambda a: (a.acceptable, a.score))
    reasons: list[str] = []
    for a in assessments:
        for r in a.reasons:
            if r not in reasons:
                reasons.append(r)
    advice = sorted({a.advice for a in assessments if a.advice})
    return QualityAssessment(
        acceptable=all(a.acceptable for a in assessments),
        reasons=tuple(reasons),
        score=worst.score,
        confidence=worst.confidence,
        model_version=worst.model_version,
        advice="; ".join(advice),
    )
