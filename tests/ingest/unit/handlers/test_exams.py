"""Exam use cases against fakes of the ports: open, read, complete with a manifest."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from ingest.unit.handlers.fakes import Fakes, dicom_file, fakes, operator

from sonobridge.common.idempotency import KeyTaken, StoredAnswer
from sonobridge.common.problems import Conflict, Forbidden, InvalidInput, NotFound
from sonobridge.ingest.domain.commands import CompleteExam, CreateExam
from sonobridge.ingest.domain.events import ExamCompleted, InstanceStored
from sonobridge.ingest.domain.model import Channel, ExamType, ManifestEntry
from sonobridge.ingest.handlers import exams, instances

EXAM = str(uuid.UUID(int=1))


def _create(institution: str = "east", **values: str) -> CreateExam:
    fields = {
        "exam_id": EXAM,
        "institution_id": institution,
        "device_serial": "probe-7",
        "exam_type": ExamType.THYROID,
        "patient_ref": "p-1",
        **values,
    }
    return CreateExam(**fields)  # type: ignore[arg-type]


@pytest.fixture
def f(tmp_path: Path) -> Fakes:
    return fakes(tmp_path)


def test_opening_an_exam_records_it_and_audits_once(f: Fakes) -> None:
    exam, created = exams.create_exam(f.deps, operator(), _create(), None)
    assert created and exam.state == "receiving" and exam.consortium_id == "county"
    assert f.tables.exams[EXAM] == exam
    assert [r.action for r in f.tables.audit] == ["create_exam"]


def test_a_repeat_returns_the_same_exam_and_changed_values_conflict(f: Fakes) -> None:
    first, _ = exams.create_exam(f.deps, operator(), _create(), None)
    again, created = exams.create_exam(f.deps, operator(), _create(), None)
    assert again == first and not created
    with pytest.raises(Conflict) as caught:
        exams.create_exam(f.deps, operator(), _create(patient_ref="p-2"), None)
    assert caught.value.extensions["reason"] == "exam_differs"


def test_an_idempotency_key_replays_its_exam_and_refuses_another_request(f: Fakes) -> None:
    first, _ = exams.create_exam(f.deps, operator(), _create(), "key-1")
    again, created = exams.create_exam(f.deps, operator(), _create(), "key-1")
    assert again == first and not created
    other = _create(exam_id=str(uuid.UUID(int=2)))
    with pytest.raises(InvalidInput) as caught:
        exams.create_exam(f.deps, operator(), other, "key-1")
    assert caught.value.status == 422
    assert caught.value.extensions["idempotency_key"] == "key-1"
    assert str(uuid.UUID(int=2)) not in f.tables.exams


def test_a_key_stored_before_the_move_replays_its_exam(f: Fakes) -> None:
    first, _ = exams.create_exam(f.deps, operator(), _create(), None)
    # What migration 0006 makes of an old row: the command's digest and the exam it opened.
    f.tables.keys[(operator().user, "old-key")] = StoredAnswer(
        _create().digest(), 201, {"exam_id": EXAM}
    )
    again, created = exams.create_exam(f.deps, operator(), _create(), "old-key")
    assert again == first and not created


def test_a_key_held_by_a_concurrent_request_conflicts(f: Fakes) -> None:
    f.tables.held_keys.add((operator().user, "key-1"))
    with pytest.raises(KeyTaken) as caught:
        exams.create_exam(f.deps, operator(), _create(), "key-1")
    assert caught.value.status == 409
    assert EXAM not in f.tables.exams


def test_exams_open_only_for_the_callers_institution_with_valid_values(f: Fakes) -> None:
    with pytest.raises(Forbidden):
        exams.create_exam(f.deps, operator(), _create(institution="west"), None)
    with pytest.raises(InvalidInput):
        exams.create_exam(f.deps, operator(), _create(exam_id="not-a-uuid"), None)
    with pytest.raises(InvalidInput):
        exams.create_exam(f.deps, operator(), _create(patient_ref="  "), None)
    assert f.tables.exams == {}


def test_another_institutions_exam_reads_as_missing(f: Fakes) -> None:
    exams.create_exam(f.deps, operator(), _create(), None)
    with pytest.raises(NotFound):
        exams.get_exam(f.deps, operator("west", "sono-9"), EXAM)
    view = exams.get_exam(f.deps, operator(), EXAM)
    assert (view.expected, view.received, view.missing) == (0, 0, [])
    assert f.tables.audit[-1].action == "read_exam"


def _store(f: Fakes, sop: str) -> str:
    data = dicom_file(sop=sop)
    with f.spooled(data) as spooled:
        instances.store_instance(f.deps, operator(), spooled, channel=Channel.APP, exam_id=EXAM)
    return hashlib.sha256(data).hexdigest()


def test_completing_waits_for_missing_instances_then_announces_once(f: Fakes) -> None:
    exams.create_exam(f.deps, operator(), _create(), None)
    first = _store(f, "1.2.3.1")
    second = hashlib.sha256(dicom_file(sop="1.2.3.2")).hexdigest()
    manifest = [ManifestEntry("1.2.3.1", first), ManifestEntry("1.2.3.2", second)]
    view = exams.complete_exam(f.deps, operator(), CompleteExam(EXAM, manifest))
    assert view.exam.state == "awaiting_instances" and view.missing == ["1.2.3.2"]
    assert not [e for e in f.tables.events if isinstance(e, ExamCompleted)]
    _store(f, "1.2.3.2")
    completed = [e for e in f.tables.events if isinstance(e, ExamCompleted)]
    assert len(completed) == 1
    assert [i.sop_instance_uid for i in completed[0].instances] == ["1.2.3.1", "1.2.3.2"]
    again = exams.complete_exam(f.deps, operator(), CompleteExam(EXAM, manifest))
    assert again.exam.state == "completed"
    assert len([e for e in f.tables.events if isinstance(e, ExamCompleted)]) == 1


def test_a_different_manifest_or_stored_hash_conflicts(f: Fakes) -> None:
    exams.create_exam(f.deps, operator(), _create(), None)
    digest = _store(f, "1.2.3.1")
    with pytest.raises(Conflict) as caught:
        exams.complete_exam(
            f.deps, operator(), CompleteExam(EXAM, [ManifestEntry("1.2.3.1", "0" * 64)])
        )
    assert caught.value.extensions["reason"] == "manifest_mismatch"
    exams.complete_exam(f.deps, operator(), CompleteExam(EXAM, [ManifestEntry("1.2.3.1", digest)]))
    other = [ManifestEntry("1.2.3.1", digest), ManifestEntry("1.2.3.5", "1" * 64)]
    with pytest.raises(Conflict) as caught:
        exams.complete_exam(f.deps, operator(), CompleteExam(EXAM, other))
    assert caught.value.extensions["reason"] == "manifest_differs"


def test_an_empty_manifest_is_refused_before_anything_is_read(f: Fakes) -> None:
    with pytest.raises(InvalidInput):
        exams.complete_exam(f.deps, operator(), CompleteExam(EXAM, []))
    assert f.db.commits == 0


def test_an_instance_stored_by_stow_joins_the_exam_its_app_upload_names(f: Fakes) -> None:
    exams.create_exam(f.deps, operator(), _create(), None)
    with f.spooled(dicom_file(sop="1.2.3.1")) as spooled:
        instances.store_instance(f.deps, operator(), spooled, channel=Channel.STOW)
    with f.spooled(dicom_file(sop="1.2.3.1")) as spooled:
        again = instances.store_instance(
            f.deps, operator(), spooled, channel=Channel.APP, exam_id=EXAM
        )
    assert again.duplicate and again.exam_id == EXAM
    # What the answer and the event carry is what the index now holds.
    assert again.instance == f.tables.instances["1.2.3.1"]
    linked = [e for e in f.tables.events if isinstance(e, InstanceStored) and e.duplicate]
    assert [(e.instance, e.exam and e.exam.exam_id) for e in linked] == [(again.instance, EXAM)]


def test_an_exam_s_first_instance_binds_its_study_in_the_event(f: Fakes) -> None:
    exams.create_exam(f.deps, operator(), _create(), None)
    _store(f, "1.2.3.1")
    (event,) = [e for e in f.tables.events if isinstance(e, InstanceStored)]
    assert event.exam is not None
    assert event.exam == f.tables.exams[EXAM]
    assert event.exam.study_instance_uid == event.instance.study_instance_uid
