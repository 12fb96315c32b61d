"""Protobuf the transports receive and answer with, as the use cases' values and back."""

from __future__ import annotations

from datetime import datetime

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.inference.v1 import inference_pb2
from sonobridge.common import exam_types
from sonobridge.common.problems import InvalidInput
from sonobridge.common.timestamps import aware, optional_time

# The quality check answers with the same message the InferenceCompleted event carries.
from sonobridge.inference.adapters.messages import quality_assessment as quality_assessment
from sonobridge.inference.domain.exams import CompletedExam, ExamInstance, RecordedQuality
from sonobridge.inference.domain.model_card import ModelCard, model_task
from sonobridge.inference.domain.validation import DeviceModel, ExpertLabel

_REASON_PREFIX = "QUALITY_REASON_"
# The gating model an expert's image-quality label judges.
LABELLED_MODEL = "image-quality"
TASKS = {
    "quality": inference_pb2.MODEL_TASK_QUALITY,
    "classification": inference_pb2.MODEL_TASK_CLASSIFICATION,
    "detection": inference_pb2.MODEL_TASK_DETECTION,
    "segmentation": inference_pb2.MODEL_TASK_SEGMENTATION,
    "measurement": inference_pb2.MODEL_TASK_MEASUREMENT,
    "probe_health": inference_pb2.MODEL_TASK_PROBE_HEALTH,
    "other": inference_pb2.MODEL_TASK_OTHER,
}


def exam_type_name(value: int) -> str:
    """Return the lower-case exam type name ("carotid") of an ExamType value; "" if unset."""
    if value == events_pb2.EXAM_TYPE_UNSPECIFIED:
        return ""
    if value not in events_pb2.ExamType.values():
        # proto3 enums are open: a newer client (or a fuzzer) can send any number.
        raise InvalidInput(f"exam type {value} is not one this service knows", reason="bad_enum")
    return exam_types.exam_type_name(value)


def exam_type_value(name: str) -> events_pb2.ExamType:
    """Return the ExamType value of a lower-case name; OTHER for names the contract lacks."""
    try:
        return exam_types.exam_type_value(name)
    except ValueError:
        return events_pb2.EXAM_TYPE_OTHER


def task_name(value: int) -> str:
    """Return the task name ("quality") a ModelTask filter asks for; "" when unset."""
    if value == inference_pb2.MODEL_TASK_UNSPECIFIED:
        return ""
    names: dict[int, str] = {int(v): k for k, v in TASKS.items()}
    # An unknown task matches no model.
    return names.get(value, f"unknown-{value}")


def task_value(card: ModelCard) -> inference_pb2.ModelTask:
    """Return the ModelTask of a card."""
    return TASKS[model_task(card)]


def completed_exam(
    message: events_pb2.ExamCompleted, emitted_at: datetime | None = None
) -> CompletedExam:
    """Return what the exam pipeline needs of an ExamCompleted event.

    Without the app's scan time, the exam is dated by when ingest completed it (`emitted_at`).
    """
    ctx = message.context
    return CompletedExam(
        study_instance_uid=ctx.study_instance_uid,
        exam_id=ctx.exam_id,
        exam_type=exam_type_name(ctx.exam_type),
        institution_id=ctx.institution_id,
        device_serial=ctx.device_serial,
        instances=tuple(_instance(i) for i in message.instances),
        manifest_sha256=message.manifest_sha256,
        context=ctx,
        # Probe verdicts are ordered by this time downstream; an inference replica's finishing
        # time would reorder them, so an app that sends no scan time gets ingest's.
        completed_at=optional_time(message, "completed_at") or emitted_at,
    )


def _instance(ref: events_pb2.InstanceRef) -> ExamInstance:
    spacing = None
    if ref.HasField("app_pixel_spacing"):
        spacing = (ref.app_pixel_spacing.row_mm, ref.app_pixel_spacing.column_mm)
    age = ref.app_gestational_age_weeks if ref.HasField("app_gestational_age_weeks") else None
    return ExamInstance(ref.sop_instance_uid, ref.object_key, ref.sha256, spacing, age)


def model_summary(card: ModelCard, *, loaded: bool, pinned: bool) -> inference_pb2.ModelSummary:
    """Build the ModelSummary of a stored model version."""
    return inference_pb2.ModelSummary(
        name=card.name,
        version=card.version,
        task=task_value(card),
        exam_types=[exam_type_value(t) for t in card.exam_types],
        sha256=card.sha256 or "",
        loaded=loaded,
        pinned=pinned,
        size_bytes=int(card.raw.get("size_bytes", 0)),
    )


def expert_label(message: events_pb2.QualityLabelled, recorded: RecordedQuality) -> ExpertLabel:
    """Return the expert label a QualityLabelled event gives, judged against the stored result.

    The event's device model wins; reporting rarely knows it, so the one inference saw in
    the instance (kept with its result) fills in.
    """
    named = DeviceModel.of(message.device_manufacturer, message.device_model_name)
    device = named if named.known else DeviceModel.of_key(recorded.device_model)
    return ExpertLabel(
        model_name=LABELLED_MODEL,
        device=device,
        sop_instance_uid=message.sop_instance_uid,
        expert_fault=None if message.acceptable else _fault(message.reason),
        model_flagged=recorded.model_flagged,
        # The role, never the expert's name: the event carries none.
        labelled_by=f"{message.labelled_by_role or 'expert'} (reporting)",
        labelled_at=aware(message.labelled_at),
    )


def _fault(value: int) -> str:
    if (
        value == events_pb2.QUALITY_REASON_UNSPECIFIED
        or value not in events_pb2.QualityReason.values()
    ):
        return "other"
    return events_pb2.QualityReason.Name(value).removeprefix(_REASON_PREFIX).lower()
