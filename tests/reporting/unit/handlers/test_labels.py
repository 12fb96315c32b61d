"""Quality labels of a read's instances over fakes."""

from __future__ import annotations

import pytest

from sonobridge.common.problems import Conflict, Forbidden, InvalidInput, NotFound
from sonobridge.reporting.domain.events import QualityLabelled
from sonobridge.reporting.domain.records import Exam
from sonobridge.reporting.handlers import labels, reads

from .fakes import T0, harness, person, routed

EXPERT = person("dr-a", "expert")


def _claimed(h, *, claimant=EXPERT):
    read_id = routed(h)
    h.tables.exams["1.2.3"] = Exam(
        study_uid="1.2.3",
        exam_id="exam-1.2.3",
        institution="th-1",
        operator="op-1",
        device_serial="US-1",
        exam_type="thyroid",
        patient_ref="p-1",
        completed_at=None,
        received_at=T0,
        instances=[
            {"sop_instance_uid": "1.2.3.1", "series_instance_uid": "1.2.3.9"},
            {"sop_instance_uid": "1.2.3.2", "series_instance_uid": "1.2.3.9"},
        ],
    )
    with h.work() as work:
        reads.claim_read(work, h.deps, claimant, read_id)
    return read_id


def _labelled_events(h):
    return [(e, key) for e, key in h.tables.events if isinstance(e, QualityLabelled)]


def test_the_claimant_labels_instances_and_each_label_is_published_without_patient_data():
    h = harness()
    read_id = _claimed(h)
    stored = labels.label_quality(
        h.deps,
        EXPERT,
        read_id,
        [
            {"sop_instance_uid": "1.2.3.1", "label": "acceptable"},
            {"sop_instance_uid": "1.2.3.2", "label": "rescan", "reason": "low_gain"},
        ],
    )
    assert [(lb.sop_instance_uid, lb.label, lb.reason) for lb in stored] == [
        ("1.2.3.1", "acceptable", ""),
        ("1.2.3.2", "rescan", "low_gain"),
    ]
    assert {lb.series_instance_uid for lb in stored} == {"1.2.3.9"}
    events = _labelled_events(h)
    assert [key for _, key in events] == ["1.2.3", "1.2.3"]
    first = events[0][0]
    assert (first.exam_id, first.study_uid, first.series_uid, first.sop_uid) == (
        "exam-1.2.3",
        "1.2.3",
        "1.2.3.9",
        "1.2.3.1",
    )
    assert (first.labelled_role, first.label) == ("expert", "acceptable")
    assert not hasattr(first, "patient_ref") and not hasattr(first, "context")
    assert h.tables.audit[-1].action == "quality_labelled"
    assert h.tables.audit[-1].detail == "1.2.3.1=acceptable,1.2.3.2=rescan"


def test_labelling_again_replaces_the_instance_label():
    h = harness()
    read_id = _claimed(h)
    labels.label_quality(
        h.deps, EXPERT, read_id, [{"sop_instance_uid": "1.2.3.1", "label": "acceptable"}]
    )
    again = labels.label_quality(
        h.deps,
        EXPERT,
        read_id,
        [{"sop_instance_uid": "1.2.3.1", "label": "rescan", "reason": "motion_blur"}],
    )
    assert [(lb.label, lb.reason) for lb in again] == [("rescan", "motion_blur")]
    assert len(_labelled_events(h)) == 2


@pytest.mark.parametrize(
    "given",
    [
        {"sop_instance_uid": "9.9.9", "label": "acceptable"},
        {"sop_instance_uid": "1.2.3.1", "label": "blurry"},
        {"sop_instance_uid": "1.2.3.1", "label": "rescan"},
        {"sop_instance_uid": "1.2.3.1", "label": "rescan", "reason": "too_dark"},
        {"sop_instance_uid": "1.2.3.1", "label": "acceptable", "reason": "low_gain"},
    ],
)
def test_a_bad_label_is_refused_and_nothing_is_kept(given):
    h = harness()
    read_id = _claimed(h)
    with pytest.raises(InvalidInput):
        labels.label_quality(
            h.deps, EXPERT, read_id, [{"sop_instance_uid": "1.2.3.2", "label": "acceptable"}, given]
        )
    assert not h.tables.quality_labels
    assert not _labelled_events(h)


def test_only_the_claimant_may_label():
    h = harness()
    read_id = _claimed(h)
    one = [{"sop_instance_uid": "1.2.3.1", "label": "acceptable"}]
    with pytest.raises(Forbidden):
        labels.label_quality(h.deps, person("dr-b", "expert"), read_id, one)
    with pytest.raises(Forbidden):
        labels.label_quality(h.deps, person("op", "operator"), read_id, one)
    with pytest.raises(NotFound):
        labels.label_quality(h.deps, EXPERT, "no-such-read", one)


def test_an_unclaimed_read_takes_no_labels():
    h = harness()
    read_id = routed(h)
    with pytest.raises(Conflict):
        labels.label_quality(
            h.deps, EXPERT, read_id, [{"sop_instance_uid": "1.2.3.1", "label": "acceptable"}]
        )
