"""Upload upkeep against fakes of the ports: expiry, dead locks, dead claims, orphaned parts."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from ingest.unit.handlers.fakes import Fakes, dicom_file, fakes, operator, stream

from sonobridge.ingest.domain.commands import CreateExam
from sonobridge.ingest.domain.model import Channel, ExamType
from sonobridge.ingest.handlers import exams, instances, recovery, uploads

EXAM = str(uuid.UUID(int=9))


@pytest.fixture
def f(tmp_path: Path) -> Fakes:
    f = fakes(tmp_path)
    command = CreateExam(EXAM, "east", "probe-7", ExamType.LIVER, "p-1")
    exams.create_exam(f.deps, operator(), command, None)
    return f


def test_expired_uploads_go_with_their_parts(f: Fakes) -> None:
    upload = uploads.create_upload(f.deps, operator(), EXAM, 100, {})
    f.store.put(f"uploads/{upload.session_id}/x.part", stream(b"x"))
    assert recovery.expire_uploads(f.deps) == 0
    f.clock.advance(hours=25)
    assert recovery.expire_uploads(f.deps) == 1
    assert f.tables.uploads == {} and f.store.objects == {}


def test_a_dead_append_lock_is_released_at_the_offset_it_held(f: Fakes) -> None:
    upload = uploads.create_upload(f.deps, operator(), EXAM, 100, {})
    with f.db.unit() as work:
        work.uploads.lock(upload.session_id, 0, 0, "open", f.clock() + f.deps.upload_expiry)
    assert recovery.recover_uploads(f.deps, sole_owner=False).reopened == 0
    f.clock.advance(seconds=29)  # still inside the lease its holder would have renewed
    assert recovery.recover_uploads(f.deps, sole_owner=False).reopened == 0
    f.clock.advance(seconds=2)
    assert recovery.recover_uploads(f.deps, sole_owner=False).reopened == 1
    assert f.tables.uploads[upload.session_id].status == "open"


def test_a_sole_owner_frees_every_claim_and_its_object(f: Fakes) -> None:
    with f.spooled(dicom_file()) as spooled:
        instances.store_instance(f.deps, operator(), spooled, channel=Channel.CSTORE)
    claim = f.tables.instances["1.2.3.1"]
    f.tables.instances["1.2.3.1"] = replace(claim, status="pending")
    assert recovery.recover_uploads(f.deps, sole_owner=False).claims_released == 0
    done = recovery.recover_uploads(f.deps, sole_owner=True)
    assert done.claims_released == 1
    assert f.tables.instances == {} and claim.object_key not in f.store.objects


def test_parts_no_committed_offset_points_to_are_swept(f: Fakes) -> None:
    upload = uploads.create_upload(f.deps, operator(), EXAM, 100, {})
    kept = f"uploads/{upload.session_id}/{0:020d}-{10:020d}.g1.part"
    stray = f"uploads/{upload.session_id}/{0:020d}-{10:020d}.g0.part"
    orphan = "uploads/gone-session/x.part"
    for key in (kept, stray, orphan):
        f.store.put(key, stream(b"0123456789"))
    f.tables.uploads[upload.session_id] = replace(
        f.tables.uploads[upload.session_id], upload_offset=10, parts=1
    )
    assert recovery.recover_uploads(f.deps, sole_owner=False).parts_removed == 2
    assert list(f.store.list("uploads/")) == [kept]


def test_an_object_published_by_a_request_that_died_before_commit_is_dropped(f: Fakes) -> None:
    with f.spooled(dicom_file()) as spooled:
        instances.store_instance(f.deps, operator(), spooled, channel=Channel.STOW)
    kept = "dicom/1.2.3/1.2.3.9/1.2.3.1.dcm"
    orphan = "dicom/1.2.3/1.2.3.9/1.2.3.2.dcm"
    f.store.put(orphan, stream(b"published, never committed"))
    assert recovery.drop_unindexed(f.deps, [kept, orphan]) == 1
    assert sorted(f.store.objects) == [kept]
