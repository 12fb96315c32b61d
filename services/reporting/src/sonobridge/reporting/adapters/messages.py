"""Protobuf <-> domain: the events reporting consumes and publishes, and finding normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common import exam_types
from sonobridge.common.contract_enums import contract_values
from sonobridge.common.timestamps import optional_time, set_times, timestamp
from sonobridge.reporting.domain.events import (
    Consumed,
    ExamCompleted,
    ExamContext,
    FollowupAlerted,
    InferenceCompleted,
    Published,
    QualityLabelled,
    ReadRouted,
    ReportSigned,
    TicketOpened,
)
from sonobridge.reporting.domain.policy import Priority, Route
from sonobridge.reporting.domain.records import JsonObject

_ROUTE_PB = contract_values(Route, events_pb2.ReadRoute, "READ_ROUTE_")
_PRIORITY_PB = contract_values(Priority, events_pb2.ReadPriority, "READ_PRIORITY_")
_VERDICT_PB = {
    "agree": events_pb2.AI_VERDICT_AGREE,
    "modify": events_pb2.AI_VERDICT_MODIFY,
    "reject": events_pb2.AI_VERDICT_REJECT,
}
_INFERENCE_STATUS = {
    events_pb2.INFERENCE_STATUS_COMPLETED: "completed",
    events_pb2.INFERENCE_STATUS_PARTIAL: "partial",
    events_pb2.INFERENCE_STATUS_FAILED: "failed",
    events_pb2.INFERENCE_STATUS_UNSPECIFIED: "completed",
}


def _ts(value: datetime | None) -> Timestamp:
    return Timestamp() if value is None else timestamp(value.astimezone(UTC))


def _dict(message: Any) -> JsonObject:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def exam_type_name(value: int) -> str:
    """Return the lower-case exam type name of an ExamType value ('other' when unspecified)."""
    name = exam_types.exam_type_name(value)
    return "other" if name == "unspecified" else name


def finding_dict(f: events_pb2.Finding) -> JsonObject:
    """Return a Finding as a JSON-safe dict."""
    return json_format.MessageToDict(
        f, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def finding_pb(d: JsonObject) -> events_pb2.Finding:
    """Return a Finding message from its dict form."""
    return json_format.ParseDict(d, events_pb2.Finding(), ignore_unknown_fields=True)


def normalize_findings(findings: Sequence[JsonObject]) -> list[JsonObject]:
    """Return client-sent findings in the stored form (every field, unknown ones dropped)."""
    return [finding_dict(finding_pb(f)) for f in findings]


def _context_in(ctx: Any) -> ExamContext:
    return ExamContext(
        exam_id=ctx.exam_id,
        study_uid=ctx.study_instance_uid,
        institution=ctx.institution_id,
        operator=ctx.operator_id,
        device_serial=ctx.device_serial,
        exam_type=exam_type_name(ctx.exam_type),
        patient_ref=ctx.patient_ref,
    )


def _context_out(ctx: ExamContext) -> events_pb2.ExamContext:
    return events_pb2.ExamContext(
        exam_id=ctx.exam_id,
        study_instance_uid=ctx.study_uid,
        institution_id=ctx.institution,
        operator_id=ctx.operator,
        device_serial=ctx.device_serial,
        exam_type=exam_types.exam_type_value(ctx.exam_type),
        patient_ref=ctx.patient_ref,
    )


def consumed(message: Any) -> Consumed | None:
    """Return the domain event of a consumed message; None for a type reporting ignores."""
    if isinstance(message, events_pb2.InferenceCompleted):
        quality = message.exam_quality if message.HasField("exam_quality") else None
        return InferenceCompleted(
            context=_context_in(message.context),
            inference_id=message.inference_id or None,
            status=_INFERENCE_STATUS.get(message.status, "completed"),
            quality=_dict(quality) if quality is not None else None,
            findings=[finding_dict(f) for f in message.findings],
            models=[_dict(m) for m in message.models],
        )
    if isinstance(message, events_pb2.ExamCompleted):
        return ExamCompleted(
            context=_context_in(message.context),
            completed_at=optional_time(message, "completed_at"),
            instances=[_dict(i) for i in message.instances],
        )
    if isinstance(message, events_pb2.TicketOpened):
        return TicketOpened(
            device_serial=message.device_serial,
            ticket_id=message.ticket_id,
            symptom=message.symptom,
            opened_at=optional_time(message, "opened_at"),
        )
    return None


# A rescan reason the contract lacks is sent as OTHER; acceptable carries none.
_QUALITY_REASON_PB = {
    "low_gain": events_pb2.QUALITY_REASON_LOW_GAIN,
    "lost_contact": events_pb2.QUALITY_REASON_LOST_CONTACT,
    "dead_elements": events_pb2.QUALITY_REASON_DEAD_ELEMENTS,
    "motion_blur": events_pb2.QUALITY_REASON_MOTION_BLUR,
    "wrong_depth": events_pb2.QUALITY_REASON_WRONG_DEPTH,
    "other": events_pb2.QUALITY_REASON_OTHER,
}


def published(event: Published) -> Any:
    """Return the protobuf message of an event reporting publishes."""
    if isinstance(event, ReadRouted):
        routed = events_pb2.ReportRouted(
            context=_context_out(event.context),
            read_id=event.read_id,
            route=_ROUTE_PB[Route(event.route)],
            worklist=event.worklist,
            priority=_PRIORITY_PB[Priority(event.priority)],
            assigned_to=event.assigned_to or "",
            policy_version=event.policy_version,
            reason=event.reason,
            routed_at=_ts(event.routed_at),
        )
        set_times(routed, due_at=event.due_at)
        return routed
    if isinstance(event, ReportSigned):
        return events_pb2.ReportSigned(
            context=_context_out(event.context),
            report_id=event.report_id,
            version=event.version,
            signed_by=event.signed_by,
            signed_at=_ts(event.signed_at),
            pdf_object_key=event.pdf_key,
            json_object_key=event.json_key,
            conclusion=event.conclusion,
            findings=[finding_pb(f) for f in event.findings],
            ai_agreement=[
                events_pb2.AiAgreement(
                    finding_code=a["finding_code"],
                    model_name=a["model_name"],
                    model_version=a["model_version"],
                    verdict=_VERDICT_PB[a["verdict"]],
                    comment=a["comment"],
                )
                for a in event.ai_agreement
            ],
            amended_from_version=event.amended_from_version,
            read_id=event.read_id,
        )
    if isinstance(event, QualityLabelled):
        return events_pb2.QualityLabelled(
            exam_id=event.exam_id,
            study_instance_uid=event.study_uid,
            read_id=event.read_id,
            series_instance_uid=event.series_uid,
            sop_instance_uid=event.sop_uid,
            device_manufacturer=event.device_manufacturer,
            device_model_name=event.device_model_name,
            acceptable=event.label == "acceptable",
            reason=_QUALITY_REASON_PB.get(event.reason, events_pb2.QUALITY_REASON_UNSPECIFIED),
            labelled_by_role=event.labelled_role,
            labelled_at=_ts(event.labelled_at),
        )
    assert isinstance(event, FollowupAlerted)
    return events_pb2.FollowupAlerted(
        context=_context_out(event.context),
        alert_id=event.alert_id,
        report_id=event.report_id,
        matched_terms=event.matched_terms,
        coordinator_institution_id=event.context.institution,
        raised_at=_ts(event.raised_at),
        report_version=event.report_version,
    )


def as_json(message: Any) -> JsonObject:
    """Return a message's JSON form (what webhooks carry)."""
    return _dict(message)
