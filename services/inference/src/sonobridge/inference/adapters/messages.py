"""Translate between inference domain values and the protobuf contracts."""

from __future__ import annotations

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.inference.v1 import inference_pb2
from sonobridge.common.problems import InvalidInput
from sonobridge.inference.domain.model_card import ModelCard
from sonobridge.inference.domain.quality import QualityVerdict

REASONS = {
    "low_gain": events_pb2.QUALITY_REASON_LOW_GAIN,
    "lost_contact": events_pb2.QUALITY_REASON_LOST_CONTACT,
    "dead_elements": events_pb2.QUALITY_REASON_DEAD_ELEMENTS,
    "motion_blur": events_pb2.QUALITY_REASON_MOTION_BLUR,
    "wrong_depth": events_pb2.QUALITY_REASON_WRONG_DEPTH,
}

ADVICE = {
    "low_gain": "increase gain",
    "lost_contact": "apply gel and keep the whole probe face on the skin",
    "dead_elements": "dark stripes: report the probe and rescan with another one",
    "motion_blur": "hold the probe and ask the patient to stay still",
    "wrong_depth": "adjust depth so the organ fills the image",
}

TASKS = {
    "quality": inference_pb2.MODEL_TASK_QUALITY,
    "classification": inference_pb2.MODEL_TASK_CLASSIFICATION,
    "detection": inference_pb2.MODEL_TASK_DETECTION,
    "segmentation": inference_pb2.MODEL_TASK_SEGMENTATION,
    "measurement": inference_pb2.MODEL_TASK_MEASUREMENT,
    "probe_health": inference_pb2.MODEL_TASK_PROBE_HEALTH,
}

_EXAM_PREFIX = "EXAM_TYPE_"


def exam_type_name(value: int) -> str:
    """Return the lower-case exam type name ("carotid") of an ExamType value; "" if unset."""
    if value == events_pb2.EXAM_TYPE_UNSPECIFIED:
        return ""
    if value not in events_pb2.ExamType.values():
        # proto3 enums are open: a newer client (or a fuzzer) can send any number.
        raise InvalidInput(f"exam type {value} is not one this service knows", reason="bad_enum")
    return events_pb2.ExamType.Name(value).removeprefix(_EXAM_PREFIX).lower()


def exam_type_value(name: str) -> int:
    """Return the ExamType value of a lower-case name; OTHER for names the contract lacks."""
    try:
        return events_pb2.ExamType.Value(_EXAM_PREFIX + name.upper())
    except ValueError:
        return events_pb2.EXAM_TYPE_OTHER


def model_task(card: ModelCard) -> int:
    """Return the ModelTask of a card, from its name or free-text task."""
    if card.name in ("image-quality",) or card.task.lower().startswith("frame quality"):
        return inference_pb2.MODEL_TASK_QUALITY
    if card.name == "probe-health" or "dead" in card.task.lower():
        return inference_pb2.MODEL_TASK_PROBE_HEALTH
    kind = str(card.raw.get("kind", "")).lower()
    for word, task in TASKS.items():
        if kind.startswith(word):
            return task
    return inference_pb2.MODEL_TASK_OTHER


def quality_assessment(verdict: QualityVerdict, model_version: str) -> events_pb2.QualityAssessment:
    """Build the QualityAssessment of one frame or instance verdict."""
    reason = verdict.reason
    reasons = [] if reason is None else [REASONS.get(reason, events_pb2.QUALITY_REASON_OTHER)]
    return events_pb2.QualityAssessment(
        acceptable=verdict.acceptable,
        reasons=reasons,
        score=float(verdict.probabilities.get("acceptable", verdict.confidence)),
        confidence=float(verdict.confidence),
        model_version=model_version,
        advice="" if reason is None else ADVICE.get(reason, "rescan"),
    )


def exam_quality(assessments: list[events_pb2.QualityAssessment]) -> events_pb2.QualityAssessment:
    """Summarise instance verdicts for the exam: it is as good as its worst instance."""
    if not assessments:
        return events_pb2.QualityAssessment()
    worst = min(assessments, key=lambda a: (a.acceptable, a.score))
    reasons: list[int] = []
    for a in assessments:
        for r in a.reasons:
            if r not in reasons:
                reasons.append(r)
    advice = sorted({a.advice for a in assessments if a.advice})
    return events_pb2.QualityAssessment(
        acceptable=all(a.acceptable for a in assessments),
        reasons=reasons,
        score=worst.score,
        confidence=worst.confidence,
        model_version=worst.model_version,
        advice="; ".join(advice),
    )


def model_summary(card: ModelCard, *, loaded: bool, pinned: bool) -> inference_pb2.ModelSummary:
    """Build the ModelSummary of a stored model version."""
    return inference_pb2.ModelSummary(
        name=card.name,
        version=card.version,
        task=model_task(card),
        exam_types=[exam_type_value(t) for t in card.exam_types],
        sha256=card.sha256 or "",
        loaded=loaded,
        pinned=pinned,
        size_bytes=int(card.raw.get("size_bytes", 0)),
    )
