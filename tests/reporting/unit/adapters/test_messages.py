"""Protobuf <-> domain events: what reporting reads from and writes to the bus."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from sonobridge.api.events.v1 import events_pb2
from sonobridge.reporting.adapters import messages
from sonobridge.reporting.domain.events import (
    ExamCompleted,
    ExamContext,
    FollowupAlerted,
    ReadRouted,
    ReportSigned,
    TicketOpened,
)

AT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CONTEXT = ExamContext("e-1", "1.2.3", "th-1", "op-1", "US-1", "thyroid", "p-1")


def _ts(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def test_consumed_events_become_domain_events_with_aware_times():
    exam = messages.consumed(
        events_pb2.ExamCompleted(
            context=events_pb2.ExamContext(
                study_instance_uid="1.2.3", exam_type=events_pb2.EXAM_TYPE_UNSPECIFIED
            ),
            completed_at=_ts(AT),
        )
    )
    assert isinstance(exam, ExamCompleted)
    assert (exam.context.exam_type, exam.completed_at) == ("other", AT)
    ticket = messages.consumed(events_pb2.TicketOpened(device_serial="US-1", ticket_id="t-1"))
    assert isinstance(ticket, TicketOpened) and ticket.opened_at is None
    assert messages.consumed(events_pb2.ReportSigned()) is None


def test_a_routed_read_is_published_with_its_enums_and_optional_due_time():
    event = ReadRouted(
        CONTEXT, "r-1", "urgent", "county-urgent", "urgent", None, "v1", "why", AT, None
    )
    message = messages.published(event)
    assert message.route == events_pb2.READ_ROUTE_URGENT
    assert message.priority == events_pb2.READ_PRIORITY_URGENT
    assert message.context.exam_type == events_pb2.EXAM_TYPE_THYROID
    assert not message.HasField("due_at") and message.assigned_to == ""
    assert messages.as_json(message)["read_id"] == "r-1"


def test_signed_reports_and_alerts_carry_findings_and_verdicts():
    agreement = [
        {
            "finding_code": "x",
            "model_name": "m",
            "model_version": "1",
            "verdict": "modify",
            "comment": "",
        }
    ]
    signed = messages.published(
        ReportSigned(
            CONTEXT,
            "r-1",
            "rep-1",
            2,
            "dr-a",
            AT,
            "a.pdf",
            "a.json",
            "ok",
            [{"code": "x", "confidence": 0.5}],
            agreement,
            1,
        )
    )
    assert signed.ai_agreement[0].verdict == events_pb2.AI_VERDICT_MODIFY
    assert (signed.findings[0].code, signed.amended_from_version) == ("x", 1)
    alerted = messages.published(FollowupAlerted(CONTEXT, "a-1", "rep-1", 2, ["nodule"], AT))
    assert alerted.coordinator_institution_id == "th-1"


def test_client_findings_are_normalized_to_every_field_and_unknown_ones_dropped():
    [normalized] = messages.normalize_findings([{"code": "x", "bogus": 1}])
    assert normalized["code"] == "x" and "bogus" not in normalized
    assert "confidence" in normalized
