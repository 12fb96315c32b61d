"""Protobuf mapping: ingest's domain records and events to events.v1 and ingest.v1 messages."""

from __future__ import annotations

from google.protobuf.message import Message

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.ingest.v1 import ingest_pb2
from sonobridge.common.contract_enums import contract_values
from sonobridge.common.exam_types import exam_type_value
from sonobridge.common.timestamps import aware, set_times, timestamp
from sonobridge.ingest.domain.ai_results import AiMeasurement, AiResult, OverlayImage
from sonobridge.ingest.domain.events import Event, ExamCompleted, InstanceStored
from sonobridge.ingest.domain.model import Channel, ExamState, ExamType
from sonobridge.ingest.domain.records import Exam, Instance
from sonobridge.ingest.domain.validation import parse_pixel_spacing

_RECEIVED_VIA = {
    Channel.APP: events_pb2.RECEIVED_VIA_APP_UPLOAD,
    Channel.STOW: events_pb2.RECEIVED_VIA_STOW_RS,
    Channel.CSTORE: events_pb2.RECEIVED_VIA_C_STORE,
    Channel.AI: events_pb2.RECEIVED_VIA_AI_RESULT,
}
_STATES = contract_values(ExamState, ingest_pb2.ExamState, "EXAM_STATE_")


def exam_context(exam: Exam | None, instance: Instance | None = None) -> events_pb2.ExamContext:
    """Build the ExamContext of an exam, or of an instance arriving without one."""
    if exam is not None:
        return events_pb2.ExamContext(
            exam_id=exam.exam_id,
            study_instance_uid=exam.study_instance_uid or "",
            institution_id=exam.institution_id,
            operator_id=exam.operator_id,
            device_serial=exam.device_serial,
            exam_type=exam_type_value(ExamType(exam.exam_type)),
            patient_ref=exam.patient_ref,
        )
    assert instance is not None
    return events_pb2.ExamContext(
        study_instance_uid=instance.study_instance_uid,
        institution_id=instance.institution_id,
        operator_id=instance.operator_id,
        device_serial=instance.device_serial,
    )


def instance_ref(instance: Instance) -> events_pb2.InstanceRef:
    """Build the InstanceRef of an indexed instance."""
    ref = events_pb2.InstanceRef(
        study_instance_uid=instance.study_instance_uid,
        series_instance_uid=instance.series_instance_uid,
        sop_instance_uid=instance.sop_instance_uid,
        sop_class_uid=instance.sop_class_uid,
        object_key=instance.object_key,
        sha256=instance.sha256,
        size_bytes=instance.size_bytes,
        transfer_syntax_uid=instance.transfer_syntax_uid,
        number_of_frames=instance.number_of_frames,
        modality=instance.modality,
    )
    if instance.app_pixel_spacing:
        row_mm, column_mm = parse_pixel_spacing(instance.app_pixel_spacing)
        ref.app_pixel_spacing.row_mm, ref.app_pixel_spacing.column_mm = row_mm, column_mm
    if instance.app_gestational_age_weeks is not None:
        ref.app_gestational_age_weeks = instance.app_gestational_age_weeks
    return ref


def instance_stored(event: InstanceStored) -> events_pb2.InstanceStored:
    """Build the InstanceStored event."""
    message = events_pb2.InstanceStored(
        context=exam_context(event.exam, event.instance),
        instance=instance_ref(event.instance),
        received_via=_RECEIVED_VIA[event.channel],
        duplicate=event.duplicate,
    )
    message.stored_at.CopyFrom(timestamp(event.stored_at))
    return message


def exam_completed(event: ExamCompleted) -> events_pb2.ExamCompleted:
    """Build the ExamCompleted event."""
    exam, ordered = event.exam, event.instances
    message = events_pb2.ExamCompleted(
        context=exam_context(exam),
        instances=[instance_ref(i) for i in ordered],
        instance_count=len(ordered),
        total_bytes=sum(i.size_bytes for i in ordered),
        scan_seconds=exam.scan_seconds or 0.0,
        manifest_sha256=exam.manifest_sha256,
    )
    if exam.scan_started_at is not None:
        message.started_at.CopyFrom(timestamp(exam.scan_started_at))
    if exam.scan_completed_at is not None:
        message.completed_at.CopyFrom(timestamp(exam.scan_completed_at))
    return message


def event_message(event: Event) -> tuple[Message, str]:
    """Return an event's message and its partition key (the study)."""
    if isinstance(event, InstanceStored):
        return instance_stored(event), event.instance.study_instance_uid
    key = event.exam.study_instance_uid or event.instances[0].study_instance_uid
    return exam_completed(event), key


def exam_message(
    exam: Exam, *, expected: int, received: int, missing: list[str], received_bytes: int
) -> ingest_pb2.Exam:
    """Build the API message of an exam's upload state."""
    message = ingest_pb2.Exam(
        context=exam_context(exam),
        state=_STATES[ExamState(exam.state)],
        expected_instance_count=expected,
        received_instance_count=received,
        missing_sop_instance_uids=missing,
        received_bytes=received_bytes,
        manifest_sha256=exam.manifest_sha256 or "",
    )
    set_times(message, created_at=exam.created_at, completed_at=exam.completed_at)
    return message


def ai_result(message: events_pb2.InferenceCompleted) -> AiResult:
    """Translate an InferenceCompleted into the run ingest renders as DICOM."""
    study = message.context.study_instance_uid
    measurements = tuple(_measurement(f) for f in message.findings)
    overlays = tuple(
        OverlayImage(key, *key.split("/")[2:4], sop_instance_uid="", frame_index=None)
        for key in message.derived_object_keys
        if key.startswith(f"derived/{study}/") and key.endswith(".png") and key.count("/") >= 4
    )
    details = tuple(k for k in message.derived_object_keys if k.endswith("/findings.json"))
    return AiResult(
        inference_id=message.inference_id,
        study_instance_uid=study,
        completed_at=aware(message.completed_at),
        measurements=measurements,
        overlays=overlays,
        details_keys=details,
    )


def _measurement(f: events_pb2.Finding) -> AiMeasurement:
    attrs = dict(f.attributes)
    site = None
    if attrs.get("finding_site"):
        site = (attrs["finding_site"], "SCT", attrs.get("finding_site_display", ""))
    frame = attrs.get("frame_index")
    return AiMeasurement(
        code=f.code,
        code_system=f.code_system,
        display=attrs.get("concept_display") or f.display,
        value=f.value if f.HasField("value") else None,
        unit=f.unit,
        confidence=f.confidence,
        low_confidence=f.low_confidence,
        abnormal=f.abnormal,
        model_name=f.model_name,
        model_version=f.model_version,
        sop_instance_uid=f.sop_instance_uid,
        frame_index=int(frame) if frame and frame.isdigit() else None,
        finding_site=site,
        local_code=attrs.get("local_code", ""),
    )
