"""tus upload use cases against fakes of the ports: open, append, finish, reject, terminate."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from ingest.unit.handlers.fakes import Fakes, dicom_file, fakes, operator

from sonobridge.common.problems import Conflict, InvalidInput, NotFound
from sonobridge.ingest.adapters.messages import instance_ref
from sonobridge.ingest.domain.commands import CreateExam
from sonobridge.ingest.domain.events import InstanceStored
from sonobridge.ingest.domain.model import ExamType
from sonobridge.ingest.domain.uploads import Gone, UploadRejected
from sonobridge.ingest.handlers import exams, uploads
from sonobridge.ingest.handlers.leases import leased

EXAM = str(uuid.UUID(int=7))
DATA = dicom_file()


@pytest.fixture
def f(tmp_path: Path) -> Fakes:
    f = fakes(tmp_path)
    exams.create_exam(
        f.deps,
        operator(),
        CreateExam(EXAM, "east", "probe-7", ExamType.KIDNEY, "p-1"),
        None,
    )
    return f


def _append(f: Fakes, session_id: str, offset: int, chunk: bytes) -> uploads.AppendResult:
    with f.spooled(chunk) as part:
        return uploads.append_upload(
            f.deps, operator(), session_id, offset, part, interrupted=False
        )


def test_chunks_move_the_offset_and_the_last_one_stores_the_instance(f: Fakes) -> None:
    upload = uploads.create_upload(f.deps, operator(), EXAM, len(DATA), {})
    middle = _append(f, upload.session_id, 0, DATA[:10])
    assert middle.upload.upload_offset == 10 and middle.stored is None
    assert list(f.store.list(f"uploads/{upload.session_id}/")) != []
    done = _append(f, upload.session_id, 10, DATA[10:])
    assert done.stored is not None and done.stored.instance.exam_id == EXAM
    assert done.upload.status == "stored" and done.upload.upload_offset == len(DATA)
    assert list(f.store.list("uploads/")) == []
    assert f.store.objects["dicom/1.2.3/1.2.3.9/1.2.3.1.dcm"] == DATA


def test_a_chunk_at_the_wrong_offset_or_past_the_length_is_refused(f: Fakes) -> None:
    upload = uploads.create_upload(f.deps, operator(), EXAM, len(DATA), {})
    with pytest.raises(Conflict) as caught:
        _append(f, upload.session_id, 5, DATA[:10])
    assert caught.value.extensions["reason"] == "offset_mismatch"
    with pytest.raises(InvalidInput):
        _append(f, upload.session_id, 0, DATA + b"extra")
    assert f.tables.uploads[upload.session_id].upload_offset == 0


def test_someone_elses_or_an_expired_upload_is_not_there(f: Fakes) -> None:
    upload = uploads.create_upload(f.deps, operator(), EXAM, len(DATA), {})
    with pytest.raises(NotFound):
        uploads.upload_status(f.deps, operator(user="sono-2"), upload.session_id)
    f.clock.advance(hours=25)
    with pytest.raises(Gone):
        uploads.upload_status(f.deps, operator(), upload.session_id)


def test_a_refused_final_chunk_ends_the_upload(f: Fakes) -> None:
    upload = uploads.create_upload(f.deps, operator(), EXAM, len(DATA), {})
    with pytest.raises(InvalidInput):
        _append(f, upload.session_id, 0, DATA.replace(b"1.2.3.9", b"1.2.x.9"))
    assert f.tables.uploads[upload.session_id].status == "rejected"
    with pytest.raises(UploadRejected):
        _append(f, upload.session_id, 0, DATA)


def test_an_upload_into_a_bad_exam_or_of_bad_length_is_not_opened(f: Fakes) -> None:
    with pytest.raises(NotFound):
        uploads.create_upload(f.deps, operator("west", "sono-9"), EXAM, 10, {})
    with pytest.raises(InvalidInput):
        uploads.create_upload(f.deps, operator(), EXAM, 0, {})
    with pytest.raises(InvalidInput):
        uploads.create_upload(f.deps, operator(), EXAM, 10, {"pixel_spacing_mm": "wide"})
    assert f.tables.uploads == {}


def test_terminating_drops_the_session_and_its_parts(f: Fakes) -> None:
    upload = uploads.create_upload(f.deps, operator(), EXAM, len(DATA), {})
    _append(f, upload.session_id, 0, DATA[:10])
    uploads.terminate_upload(f.deps, operator(), upload.session_id)
    assert f.tables.uploads == {} and list(f.store.list("uploads/")) == []


def test_a_live_append_lock_makes_a_second_request_wait(f: Fakes) -> None:
    upload = uploads.create_upload(f.deps, operator(), EXAM, len(DATA), {})
    with f.db.unit() as work:
        work.uploads.lock(upload.session_id, 0, 0, "open", f.clock() + f.deps.upload_expiry)
    with pytest.raises(Conflict) as caught:
        _append(f, upload.session_id, 0, DATA[:10])
    assert caught.value.extensions["reason"] == "upload_busy"
    assert caught.value.headers == {"Retry-After": "5"}  # type: ignore[attr-defined]


def test_a_lock_whose_lease_ran_out_is_taken_over_at_the_durable_offset(f: Fakes) -> None:
    upload = uploads.create_upload(f.deps, operator(), EXAM, len(DATA), {})
    _append(f, upload.session_id, 0, DATA[:10])
    with f.db.unit() as work:  # a holder that took the lock at 10, then was killed
        work.uploads.lock(upload.session_id, 10, 1, "open", f.clock() + f.deps.upload_expiry)
    f.clock.advance(seconds=28)
    with pytest.raises(Conflict) as caught:
        _append(f, upload.session_id, 10, DATA[10:])
    assert caught.value.headers == {"Retry-After": "2"}  # type: ignore[attr-defined]
    f.clock.advance(seconds=2)
    done = _append(f, upload.session_id, 10, DATA[10:])
    assert done.stored is not None and f.store.objects[done.stored.instance.object_key] == DATA


def test_a_holder_renews_its_lease_while_it_writes_and_keeps_the_lock(f: Fakes) -> None:
    upload = uploads.create_upload(f.deps, operator(), EXAM, len(DATA), {})
    f.deps.upload_lock_lease = timedelta(seconds=0.3)
    with f.db.unit() as work:
        work.uploads.lock(upload.session_id, 0, 0, "open", f.clock() + f.deps.upload_expiry)
    with leased(f.deps, upload.session_id, 1):
        f.clock.advance(seconds=1)
        time.sleep(0.3)  # several renewals at 0.05 s each; the last one after the clock moved
        with pytest.raises(Conflict):
            _append(f, upload.session_id, 0, DATA[:10])
    renewed = f.tables.uploads[upload.session_id]
    assert renewed.expires_at == f.clock() + f.deps.upload_expiry
    f.clock.advance(seconds=1)  # no renewal once the holder let go: the lease runs out
    assert _append(f, upload.session_id, 0, DATA[:10]).upload.upload_offset == 10


def test_a_streaming_body_commits_only_middle_pieces_that_are_due(f: Fakes) -> None:
    f.deps.upload_commit_bytes, f.deps.upload_commit_seconds = 100, 5.0
    due = uploads.commit_due
    assert due(f.deps, 0, 100, 1000, 0.0, checksummed=False)
    assert due(f.deps, 0, 1, 1000, 5.0, checksummed=False)  # slow link: time decides
    assert not due(f.deps, 0, 99, 1000, 4.9, checksummed=False)
    assert not due(f.deps, 0, 0, 1000, 60.0, checksummed=False)
    assert not due(f.deps, 900, 100, 1000, 0.0, checksummed=False)  # the final byte: store whole
    assert not due(f.deps, 0, 500, 1000, 60.0, checksummed=True)  # verifiable only when whole


def test_pieces_committed_while_streaming_assemble_the_same_instance_once(f: Fakes) -> None:
    upload = uploads.create_upload(f.deps, operator(), EXAM, len(DATA), {})
    offset = 0
    for size in (3, 5, 8):
        offset = _append(
            f, upload.session_id, offset, DATA[offset : offset + size]
        ).upload.upload_offset
    # A newcomer that took over at the committed offset wins; the old holder's next piece,
    # at the offset it still believes in, changes nothing.
    taken = _append(f, upload.session_id, offset, DATA[offset : offset + 4]).upload.upload_offset
    with pytest.raises(Conflict) as caught:
        _append(f, upload.session_id, offset, DATA[offset : offset + 6])
    assert caught.value.extensions["reason"] == "offset_mismatch"
    assert f.tables.uploads[upload.session_id].upload_offset == taken
    done = _append(f, upload.session_id, taken, DATA[taken:])
    assert done.stored is not None
    assert f.store.objects["dicom/1.2.3/1.2.3.9/1.2.3.1.dcm"] == DATA
    assert list(f.store.list("uploads/")) == []


def test_the_apps_gestational_age_is_kept_on_the_instance_and_its_event(f: Fakes) -> None:
    sent = {"gestational_age_weeks": "22.5", "pixel_spacing_mm": "0.2"}
    upload = uploads.create_upload(f.deps, operator(), EXAM, len(DATA), sent)
    done = _append(f, upload.session_id, 0, DATA)
    assert done.stored is not None
    assert done.stored.instance.app_gestational_age_weeks == 22.5
    announced = [e for e in f.tables.events if isinstance(e, InstanceStored)]
    ref = instance_ref(announced[-1].instance)
    assert ref.HasField("app_gestational_age_weeks") and ref.app_gestational_age_weeks == 22.5


def test_an_upload_without_a_gestational_age_announces_none(f: Fakes) -> None:
    upload = uploads.create_upload(f.deps, operator(), EXAM, len(DATA), {})
    done = _append(f, upload.session_id, 0, DATA)
    assert done.stored is not None and done.stored.instance.app_gestational_age_weeks is None
    assert not instance_ref(done.stored.instance).HasField("app_gestational_age_weeks")


@pytest.mark.parametrize("weeks", ["9.9", "44.1", "150", "twenty", "nan", "-3"])
def test_an_implausible_gestational_age_is_refused_before_the_upload_opens(
    f: Fakes, weeks: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        uploads.create_upload(f.deps, operator(), EXAM, 10, {"gestational_age_weeks": weeks})
    assert caught.value.extensions["reason"] == "bad_gestational_age"
    assert f.tables.uploads == {}
