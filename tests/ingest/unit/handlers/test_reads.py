"""Read use cases against fakes of the ports: searches within reach, paging, stored bytes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from ingest.unit.handlers.fakes import Fakes, dicom_file, fakes, operator

from sonobridge.common.auth import Principal
from sonobridge.common.problems import Forbidden, NotFound
from sonobridge.ingest.domain.commands import CreateExam
from sonobridge.ingest.domain.media import BulkKey
from sonobridge.ingest.domain.model import Channel, ExamType
from sonobridge.ingest.domain.query import criteria_for, within
from sonobridge.ingest.handlers import exams, instances, reads

EXAM = str(uuid.UUID(int=3))


@pytest.fixture
def f(tmp_path: Path) -> Fakes:
    f = fakes(tmp_path)
    exams.create_exam(
        f.deps, operator(), CreateExam(EXAM, "east", "probe-7", ExamType.ABDOMEN, "p-1"), None
    )
    for sop in ("1.2.3.1", "1.2.3.2", "1.2.3.3"):
        with f.spooled(dicom_file(sop=sop)) as spooled:
            instances.store_instance(f.deps, operator(), spooled, channel=Channel.APP, exam_id=EXAM)
    with f.spooled(dicom_file(sop="1.2.5.1", study="1.2.5")) as spooled:
        instances.store_instance(f.deps, operator("west", "sono-9"), spooled, channel=Channel.STOW)
    return f


def _find(f: Fakes, who: Principal, *criteria: object) -> list[str]:
    found = reads.find_instances(
        f.deps,
        who,
        list(criteria),  # type: ignore[arg-type]
        action="search_instances",
        resource_id="*",
    )
    return sorted(i.sop_instance_uid for i in found)


def test_a_search_answers_only_what_the_caller_may_read_and_is_audited(f: Fakes) -> None:
    assert _find(f, operator()) == ["1.2.3.1", "1.2.3.2", "1.2.3.3"]
    assert _find(f, operator("west", "sono-9")) == ["1.2.5.1"]
    audit = f.tables.audit[-1]
    assert (audit.action, audit.outcome, audit.channel) == ("search_instances", "ok:1", "dicomweb")


def test_a_search_matches_every_criterion(f: Fakes) -> None:
    assert _find(f, operator(), *within("1.2.3", None, "1.2.3.2")) == ["1.2.3.2"]
    assert _find(f, operator(), *criteria_for("SOPInstanceUID", "1.2.3.1,1.2.3.3")) == [
        "1.2.3.1",
        "1.2.3.3",
    ]
    assert _find(f, operator(), *criteria_for("Modality", "US")) == []


def test_a_caller_without_a_reading_role_is_refused(f: Fakes) -> None:
    with pytest.raises(Forbidden):
        _find(f, Principal("robot", frozenset(), "east"))


def test_exam_instances_come_in_pages(f: Fakes) -> None:
    page, more = reads.list_exam_instances(f.deps, operator(), EXAM, 0, 2)
    assert [i.sop_instance_uid for i in page] == ["1.2.3.1", "1.2.3.2"] and more
    page, more = reads.list_exam_instances(f.deps, operator(), EXAM, 2, 2)
    assert [i.sop_instance_uid for i in page] == ["1.2.3.3"] and not more
    with pytest.raises(NotFound):
        reads.list_exam_instances(f.deps, operator("west", "sono-9"), EXAM, 0, 2)


def test_stored_bytes_frames_renderings_and_elements_come_from_the_object(f: Fakes) -> None:
    (instance,) = reads.find_instances(
        f.deps, operator(), within("1.2.3", None, "1.2.3.1"), action="retrieve", resource_id="x"
    )
    with reads.open_instance(f.deps, instance) as chunks:
        assert b"".join(chunks) == dicom_file(sop="1.2.3.1")
    path = reads.prepare_frames(f.deps, instance, [1])
    assert list(reads.read_frames(f.deps, path, [1])) == [dicom_file(sop="1.2.3.1")]
    path.unlink()
    assert reads.render(f.deps, instance, 1, "image/png") == b"image/png:1"
    length, body, close = reads.open_bulk(f.deps, instance, BulkKey(0x7FE00010, 2))
    assert length == len(dicom_file(sop="1.2.3.1")) - 2 and b"".join(body)
    close()
    assert [p.name for p in f.spool.directory.iterdir()] == []
