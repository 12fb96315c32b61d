"""Protobuf mapping: ExamCompleted in, InferenceCompleted out, without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
from inference.unit.handlers.fakes import exam, png, world

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.inference.v1 import inference_pb2
from sonobridge.common.problems import InvalidInput
from sonobridge.inference.adapters.messages import inference_completed
from sonobridge.inference.domain.exams import Finding
from sonobridge.inference.entrypoints import messages
from sonobridge.inference.handlers import exams
from sonobridge.inference.modules.base import ModuleFinding


def test_an_exam_completed_event_becomes_the_exam_the_pipeline_reads():
    event = events_pb2.ExamCompleted(
        context=events_pb2.ExamContext(
            study_instance_uid="1.2.3",
            exam_type=events_pb2.EXAM_TYPE_KIDNEY,
            device_serial="PROBE-1",
        ),
        instances=[
            events_pb2.InstanceRef(sop_instance_uid="1.2.3.1", object_key="k1", sha256="a"),
            events_pb2.InstanceRef(
                sop_instance_uid="1.2.3.2",
                object_key="k2",
                sha256="b",
                app_pixel_spacing=events_pb2.PixelSpacing(row_mm=0.2, column_mm=0.3),
            ),
        ],
    )
    completed = messages.completed_exam(event)
    assert completed.exam_type == "kidney" and completed.device_serial == "PROBE-1"
    assert [i.app_spacing_mm for i in completed.instances] == [None, (0.2, 0.3)]
    # An older producer sends no manifest hash: it is derived from the instances, stably.
    assert completed.manifest() == messages.completed_exam(event).manifest() != ""
    assert completed.context == event.context


def test_the_apps_gestational_age_on_an_instance_reaches_the_exam_and_absence_stays_none():
    event = events_pb2.ExamCompleted(
        context=events_pb2.ExamContext(
            study_instance_uid="1.2.3", exam_type=events_pb2.EXAM_TYPE_OBSTETRIC
        ),
        instances=[
            events_pb2.InstanceRef(sop_instance_uid="1.2.3.1", object_key="k1", sha256="a"),
            events_pb2.InstanceRef(
                sop_instance_uid="1.2.3.2",
                object_key="k2",
                sha256="b",
                app_gestational_age_weeks=21.5,
            ),
        ],
    )
    completed = messages.completed_exam(event)
    assert [i.app_gestational_age_weeks for i in completed.instances] == [None, 21.5]


def test_an_exam_type_the_contract_lacks_is_refused():
    event = events_pb2.ExamCompleted(context=events_pb2.ExamContext(exam_type=999))
    with pytest.raises(InvalidInput, match="exam type 999"):
        messages.completed_exam(event)


def test_a_result_becomes_an_inference_completed_event_with_its_context():
    w = world(acceptable=0.2, fault="lost_contact")
    completed = exam(w.store, [png(), None])
    context = events_pb2.ExamContext(study_instance_uid="1.2.3", exam_id="exam-1")
    completed = replace(completed, context=context)
    exams.infer_exam(w.deps, w.work, completed, "event-1")
    event = inference_completed(w.work.published[0])
    assert event.context == context and event.status == events_pb2.INFERENCE_STATUS_PARTIAL
    assert event.inference_id == w.work.published[0].inference_id
    assert list(event.exam_quality.reasons) == [events_pb2.QUALITY_REASON_LOST_CONTACT]
    assert [iq.sop_instance_uid for iq in event.instance_quality] == ["1.2.3.0"]
    assert [m.name for m in event.models] == ["image-quality", "probe-health"]
    assert event.probe_health.device_serial == "PROBE-1"
    assert event.started_at.ToDatetime() < event.completed_at.ToDatetime()


def test_findings_carry_their_coded_fields_and_a_presence_finding_has_no_value():
    w = world(acceptable=0.9)
    exams.infer_exam(w.deps, w.work, exam(w.store, [png()]), "event-1")
    coded = {"code_system": "http://snomed.info/sct", "unit": "mm", "confidence": 0.8}
    measured = ModuleFinding(
        "1",
        display="IMT",
        value=np.float32(0.75),
        low_confidence=False,
        abnormal=True,
        sop_instance_uid="1.2.3.0",
        **coded,
    )
    present = replace(measured, code="2", display="plaque", value=None, abnormal=False)
    findings = tuple(
        Finding(
            **f.coded(),
            sop_instance_uid=f.sop_instance_uid,
            attributes={"side": "left"},
            model_name="carotid",
            model_version="1.0",
            evidence_object_keys=("k",),
        )
        for f in (measured, present)
    )
    event = inference_completed(replace(w.work.published[0], findings=findings))
    first, second = event.findings
    assert (first.code, first.display, first.unit, first.abnormal) == ("1", "IMT", "mm", True)
    assert first.HasField("value") and first.value == pytest.approx(0.75)
    assert (first.model_name, list(first.evidence_object_keys)) == ("carotid", ["k"])
    assert dict(first.attributes) == {"side": "left"} and first.sop_instance_uid == "1.2.3.0"
    assert not second.HasField("value") and second.display == "plaque"
    assert type(findings[0].value) is float, "a numpy scalar never reaches JSON or protobuf"


def test_the_exams_own_completion_time_travels_from_exam_completed_to_inference_completed():
    event = events_pb2.ExamCompleted(
        context=events_pb2.ExamContext(study_instance_uid="1.2.3", device_serial="PROBE-1"),
        instances=[events_pb2.InstanceRef(sop_instance_uid="1.2.3.0", object_key="k", sha256="a")],
    )
    event.completed_at.FromDatetime(datetime(2026, 1, 5, 8, 0))
    completed = messages.completed_exam(event)
    assert completed.completed_at == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert messages.completed_exam(events_pb2.ExamCompleted()).completed_at is None
    # An app that sends no scan time: the exam is dated by ingest's completion, never later.
    emitted = datetime(2026, 1, 5, 8, 3, tzinfo=UTC)
    assert messages.completed_exam(events_pb2.ExamCompleted(), emitted).completed_at == emitted
    assert messages.completed_exam(event, emitted).completed_at == completed.completed_at

    w = world(acceptable=0.2, fault="lost_contact")
    stored = replace(exam(w.store, [png()]), completed_at=completed.completed_at)
    exams.infer_exam(w.deps, w.work, stored, "event-1")
    published = inference_completed(w.work.published[0])
    # The run finished later; the exam's own time is what orders a probe's verdicts.
    assert published.exam_completed_at.ToDatetime(UTC) == completed.completed_at
    assert published.completed_at.ToDatetime(UTC) > completed.completed_at


def test_model_tasks_map_both_ways():
    assert messages.task_name(inference_pb2.MODEL_TASK_PROBE_HEALTH) == "probe_health"
    assert messages.task_name(0) == "" and messages.task_name(99) == "unknown-99"
    assert messages.exam_type_value("not-in-contract") == events_pb2.EXAM_TYPE_OTHER
