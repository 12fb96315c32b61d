"""Translate inference results into the InferenceCompleted event of the contract."""

from __future__ import annotations

from dataclasses import asdict
from typing import cast

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.contract_enums import contract_values
from sonobridge.common.timestamps import timestamp
from sonobridge.inference.domain.exams import (
    Finding,
    InferenceResult,
    InferenceStatus,
    ProbeHealth,
)
from sonobridge.inference.domain.quality import QualityAssessment

STATUSES = contract_values(InferenceStatus, events_pb2.InferenceStatus, "INFERENCE_STATUS_")


def validation_state(state: str) -> events_pb2.QualityValidation:
    """Return the contract's QualityValidation for a state name."""
    value = events_pb2.QualityValidation.Value(f"QUALITY_VALIDATION_{state.upper()}")
    # The stubs type Value() as a plain int; it is one of this enum's numbers.
    return cast(events_pb2.QualityValidation, value)


def quality_assessment(a: QualityAssessment) -> events_pb2.QualityAssessment:
    """Build the QualityAssessment message of an assessment."""
    reasons = [events_pb2.QualityReason.Value(f"QUALITY_REASON_{r.upper()}") for r in a.reasons]
    fields = asdict(a)
    model_acceptable = fields.pop("model_acceptable")
    return events_pb2.QualityAssessment(
        **{
            **fields,
            "reasons": reasons,
            "validation": validation_state(a.validation),
            "model_acceptable": a.acceptable if model_acceptable is None else model_acceptable,
        }
    )


def probe_health(health: ProbeHealth) -> events_pb2.ProbeHealth:
    """Build the ProbeHealth message of an exam's probe verdict."""
    return events_pb2.ProbeHealth(
        **{**asdict(health), "validation": validation_state(health.validation)}
    )


def _finding(f: Finding) -> events_pb2.Finding:
    # A value of None leaves the optional `value` unset (a presence/absence finding).
    return events_pb2.Finding(
        **f.coded(),
        model_name=f.model_name,
        model_version=f.model_version,
        evidence_object_keys=list(f.evidence_object_keys),
        sop_instance_uid=f.sop_instance_uid,
        attributes=f.attributes,
    )


def inference_completed(result: InferenceResult) -> events_pb2.InferenceCompleted:
    """Build the InferenceCompleted event of a recorded result."""
    context = result.exam.context
    if not isinstance(context, events_pb2.ExamContext):
        context = events_pb2.ExamContext(
            exam_id=result.exam.exam_id,
            study_instance_uid=result.exam.study_instance_uid,
            institution_id=result.exam.institution_id,
            device_serial=result.exam.device_serial,
        )
    message = events_pb2.InferenceCompleted(
        context=context,
        exam_quality=quality_assessment(result.exam_quality),
        instance_quality=[
            events_pb2.InstanceQuality(
                sop_instance_uid=iq.sop_instance_uid,
                assessment=quality_assessment(iq.assessment),
            )
            for iq in result.instance_quality
        ],
        findings=[_finding(f) for f in result.findings],
        models=[
            events_pb2.ModelRef(name=m.name, version=m.version, sha256=m.sha256)
            for m in result.models
        ],
        derived_object_keys=list(result.derived_object_keys),
        started_at=timestamp(result.started_at),
        completed_at=timestamp(result.completed_at),
        status=STATUSES[result.status],
        error_message=result.error_message,
        probe_health=probe_health(result.probe_health),
        inference_id=result.inference_id,
    )
    if result.exam.completed_at is not None:
        message.exam_completed_at.CopyFrom(timestamp(result.exam.completed_at))
    return message
