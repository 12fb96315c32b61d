"""The consumer translates protobuf events into domain events and calls one use case each."""

from __future__ import annotations

import pytest

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.delivery import PermanentFailure
from sonobridge.common.envelope import wrap
from sonobridge.reporting.adapters import messages
from sonobridge.reporting.entrypoints.consumer import event_handler

from ..handlers.fakes import harness


def _context(study: str = "1.2.3") -> events_pb2.ExamContext:
    return events_pb2.ExamContext(
        exam_id="e-1",
        study_instance_uid=study,
        institution_id="th-1",
        operator_id="op-1",
        device_serial="US-1",
        exam_type=events_pb2.EXAM_TYPE_THYROID,
        patient_ref="p-1",
    )


def test_an_inference_result_becomes_a_routed_read():
    h = harness()
    handle = event_handler(h.deps, messages.consumed)
    message = events_pb2.InferenceCompleted(
        context=_context(),
        inference_id="inf-1",
        status=events_pb2.INFERENCE_STATUS_COMPLETED,
        findings=[
            events_pb2.Finding(
                code="237495005", confidence=0.95, abnormal=True, model_name="thyroid-net"
            )
        ],
    )
    handle(None, None, wrap(message, source="test", key="1.2.3"))
    [read] = h.tables.reads.values()
    assert (read.exam_type, read.worklist, read.inference_id) == (
        "thyroid",
        "county-thyroid",
        "inf-1",
    )
    assert read.ai_findings[0]["code"] == "237495005"


def test_an_invalid_event_is_a_permanent_failure():
    h = harness()
    handle = event_handler(h.deps, messages.consumed)
    message = events_pb2.ExamCompleted(context=_context(study=""))
    with pytest.raises(PermanentFailure):
        handle(None, None, wrap(message, source="test", key="x"))


def test_an_event_reporting_does_not_consume_is_a_permanent_failure():
    h = harness()
    handle = event_handler(h.deps, messages.consumed)
    message = events_pb2.ReportSigned(report_id="r-1")
    with pytest.raises(PermanentFailure):
        handle(None, None, wrap(message, source="test", key="x"))
