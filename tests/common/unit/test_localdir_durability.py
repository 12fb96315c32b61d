"""The local-directory store makes a put's name durable before it returns, not only its bytes."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from sonobridge.common.objects.localdir import LocalDirObjectStore


@pytest.fixture
def disk_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record each fsync (by the path its descriptor names) and each rename, in order."""
    calls: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(source: str | Path, target: str | Path) -> None:
        real_replace(source, target)
        calls.append(("replace", str(target)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return calls


def test_a_put_fsyncs_its_new_folders_and_the_folder_after_the_rename(
    tmp_path: Path, disk_calls: list[tuple[str, str]]
) -> None:
    store = LocalDirObjectStore(tmp_path)
    disk_calls.clear()

    store.put("uploads/s1/0-4.part", io.BytesIO(b"abcd"), length=4)

    data = tmp_path.resolve() / "data"
    target = str(data / "uploads/s1/0-4.part")
    renamed = disk_calls.index(("replace", target))
    # The new folders' entries are durable in their parents, and the name after its rename.
    assert ("fsync", str(data)) in disk_calls[:renamed]
    assert ("fsync", str(data / "uploads")) in disk_calls[:renamed]
    assert ("fsync", str(data / "uploads/s1")) in disk_calls[renamed + 1 :]
    # The bytes were synced before the rename made them visible.
    assert disk_calls[renamed - 1][0] == "fsync"
    assert store.stat("uploads/s1/0-4.part") is not None


def test_a_put_with_metadata_syncs_the_metadata_before_renaming_it(
    tmp_path: Path, disk_calls: list[tuple[str, str]]
) -> None:
    store = LocalDirObjectStore(tmp_path)
    disk_calls.clear()

    store.put("reports/r1.pdf", io.BytesIO(b"%PDF"), length=4, content_type="application/pdf")

    meta = str(tmp_path.resolve() / "data/reports/r1.pdf.meta.json")
    renamed = disk_calls.index(("replace", meta))
    assert disk_calls[renamed - 1][0] == "fsync"
    assert disk_calls[renamed - 1][1].endswith(".meta.json")
    info = store.stat("reports/r1.pdf")
    assert info is not None and info.content_type == "application/pdf"
