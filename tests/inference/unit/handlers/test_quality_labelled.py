"""QualityLabelled from reporting: mapped to an expert label, kept, judged against the result."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime

import numpy as np
import pytest
from inference.unit.handlers.fakes import exam, world
from inference.unit.handlers.test_validation import ADMIN, BUTTERFLY, report

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import QUALITY_LABELLED
from sonobridge.common.bus.ports import ReceivedEvent
from sonobridge.common.delivery import PermanentFailure
from sonobridge.common.envelope import wrap
from sonobridge.inference.domain.exams import RecordedQuality
from sonobridge.inference.domain.validation import DeviceModel, ValidationState
from sonobridge.inference.entrypoints import consumer, messages
from sonobridge.inference.handlers import exams, validation
from sonobridge.lab.synthetic.dicom import SyntheticExamContext, ultrasound_dicom_bytes

AT = datetime(2026, 1, 6, 10, 0, tzinfo=UTC)


def labelled(sop: str, *, acceptable: bool = True, reason: int = 0, **device: str):
    """Return a QualityLabelled event of an instance of study 1.2.3."""
    return events_pb2.QualityLabelled(
        exam_id="exam-1",
        study_instance_uid="1.2.3",
        read_id="read-1",
        series_instance_uid="1.2.3.9",
        sop_instance_uid=sop,
        acceptable=acceptable,
        reason=reason,
        labelled_by_role="expert",
        labelled_at=AT,
        **device,
    )


def test_the_event_names_the_fault_and_falls_back_to_the_recorded_device():
    recorded = RecordedQuality("1.2.3.0", BUTTERFLY.key, model_flagged=True)
    label = messages.expert_label(
        labelled("1.2.3.0", acceptable=False, reason=events_pb2.QUALITY_REASON_LOW_GAIN),
        recorded,
    )
    assert (label.model_name, label.device, label.expert_fault) == (
        "image-quality",
        BUTTERFLY,
        "low_gain",
    )
    assert label.model_flagged and label.labelled_at == AT
    assert label.labelled_by == "expert (reporting)"
    named = messages.expert_label(
        labelled("1.2.3.0", device_manufacturer="GE", device_model_name="Vscan Air"), recorded
    )
    assert named.device == DeviceModel.of("GE", "Vscan Air") and named.expert_fault is None
    unnamed = messages.expert_label(labelled("x", acceptable=False, reason=99), recorded)
    assert unnamed.expert_fault == "other"


def _butterfly_frames(count: int) -> list[bytes]:
    frame = np.full((1, 32, 32), 90, np.uint8)
    context = SyntheticExamContext(manufacturer="Butterfly Network", model_name="Butterfly iQ")
    return [ultrasound_dicom_bytes(frame, (0.2, 0.2), context=context) for _ in range(count)]


def _deliver(stage, message) -> None:
    event = wrap(message, source="reporting", key="1.2.3")
    commit = stage(ReceivedEvent(QUALITY_LABELLED, 0, 0, None, b""), event)
    commit(object())


def test_acceptable_labels_on_rescanned_frames_of_a_gating_device_demote_it():
    # The model sends every frame to rescan; the expert finds each one fine.
    w = world(acceptable=0.01, state=None)
    validation.promote_device_model(w.deps, ADMIN, report())
    completed = exam(w.store, _butterfly_frames(4))
    result = exams.analyse_exam(w.deps, completed, "event-1", w.work.results.find)
    assert result is not None
    exams.record_result(w.work, result)
    stage = consumer.event_stage(w.deps, nullcontext)
    assert consumer.TOPICS == ("sonobridge.ingest.exam-completed.v1", QUALITY_LABELLED)
    for i in range(4):
        _deliver(stage, labelled(f"1.2.3.{i}"))
    _deliver(stage, labelled("1.2.3.0"))  # a redelivery replaces the label with itself
    kept = list(w.validations.labels.values())
    assert [(x.device, x.model_flagged, x.expert_fault) for x in kept] == [
        (BUTTERFLY, True, None)
    ] * 4
    assert [c.to_state for c in w.validations.changes] == [
        ValidationState.GATING,
        ValidationState.ADVISORY,
    ]


def test_a_label_of_an_instance_inference_never_saw_is_not_kept():
    w = world()
    stage = consumer.event_stage(w.deps, nullcontext)
    _deliver(stage, labelled("9.9.9"))
    assert not w.validations.labels


def test_another_event_on_the_topic_is_a_permanent_failure():
    w = world()
    stage = consumer.event_stage(w.deps, nullcontext)
    event = wrap(events_pb2.TicketOpened(ticket_id="t"), source="x", key="k")
    with pytest.raises(PermanentFailure):
        stage(ReceivedEvent(QUALITY_LABELLED, 0, 0, None, b""), event)
