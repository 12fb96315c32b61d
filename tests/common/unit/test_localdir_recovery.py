"""The local-directory store cleans up after a kill between its metadata and data renames."""

from __future__ import annotations

import io
from pathlib import Path

from sonobridge.common.objects.localdir import LocalDirObjectStore


def test_start_up_removes_metadata_whose_object_is_gone_and_keeps_whole_objects(
    tmp_path: Path,
) -> None:
    store = LocalDirObjectStore(tmp_path)
    store.put("uploads/s/kept.part", io.BytesIO(b"kept"), length=4, content_type="text/plain")
    store.put("uploads/s/half.part", io.BytesIO(b"half"), length=4, content_type="text/plain")
    # A kill inside delete(): the data went, its metadata did not.
    (tmp_path / "data/uploads/s/half.part").unlink()
    (tmp_path / ".tmp/left-by-a-kill").write_bytes(b"x")

    LocalDirObjectStore(tmp_path).purge_temp()

    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["data/uploads/s/kept.part", "data/uploads/s/kept.part.meta.json"]
    assert store.stat("uploads/s/kept.part") is not None


def test_a_staged_put_left_by_a_dead_process_is_reported_once_at_start_up(
    tmp_path: Path,
) -> None:
    source = tmp_path / "spooled.dcm"
    source.write_bytes(b"DICM")
    store = LocalDirObjectStore(tmp_path / "objects")
    finished = store.stage("dicom/1/2/3.dcm", source)
    finished.publish()
    finished.discard()
    store.stage("dicom/1/2/4.dcm", source).publish()  # killed before its commit

    restarted = LocalDirObjectStore(tmp_path / "objects")
    restarted.purge_temp()
    assert restarted.take_interrupted() == ("dicom/1/2/4.dcm",)
    assert restarted.take_interrupted() == ()
    assert sorted(restarted.list("dicom/")) == ["dicom/1/2/3.dcm", "dicom/1/2/4.dcm"]
