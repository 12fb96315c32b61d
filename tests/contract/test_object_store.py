"""Contract suite for the object store port: a local directory, real MinIO and SeaweedFS (S3)."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from sonobridge.common.objects.ports import ObjectNotFound, ObjectStore, read_all


class PatternStream(io.RawIOBase):
    """A readable stream of `size` deterministic bytes that never exists in memory at once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pos = 0
        self.digest = hashlib.sha256()
        self._block = bytes(range(256)) * 4096  # 1 MiB

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        n = min(len(view), self.size - self.pos)
        filled = 0
        while filled < n:
            offset = (self.pos + filled) % len(self._block)
            take = min(n - filled, len(self._block) - offset)
            view[filled : filled + take] = self._block[offset : offset + take]
            filled += take
        self.digest.update(view[:n])
        self.pos += n
        return n


def test_put_then_open_returns_the_same_bytes(store: ObjectStore) -> None:
    info = store.put(
        "dicom/1.2.3/1.2.3.4/1.2.3.4.5.dcm",
        io.BytesIO(b"DICM" * 1000),
        content_type="application/dicom",
        metadata={"sha256": "abc"},
    )
    assert info.size == 4000
    assert read_all(store, "dicom/1.2.3/1.2.3.4/1.2.3.4.5.dcm") == b"DICM" * 1000
    stat = store.stat("dicom/1.2.3/1.2.3.4/1.2.3.4.5.dcm")
    assert stat is not None
    assert (stat.size, stat.content_type, stat.metadata["sha256"]) == (
        4000,
        "application/dicom",
        "abc",
    )


def test_a_staged_file_is_invisible_until_published_and_its_source_stays(
    store: ObjectStore, tmp_path: Path
) -> None:
    source = tmp_path / "spooled.dcm"
    source.write_bytes(b"DICM" * 2000)
    key = "dicom/1.2.3/1.2.3.4/1.2.3.4.6.dcm"
    staged = store.stage(key, source, content_type="application/dicom")
    assert store.stat(key) is None
    assert staged.publish().size == 8000
    staged.durable_publish()
    staged.discard()
    assert read_all(store, key) == b"DICM" * 2000
    stat = store.stat(key)
    assert stat is not None and (stat.size, stat.content_type) == (8000, "application/dicom")
    assert source.read_bytes() == b"DICM" * 2000


def test_objects_staged_in_one_folder_are_made_durable_by_one_equal_call(
    store: ObjectStore, tmp_path: Path
) -> None:
    source = tmp_path / "spooled.dcm"
    source.write_bytes(b"DICM")
    first, second = (store.stage(f"dicom/1.2.3/1.2.3.4/1.2.3.4.{i}.dcm", source) for i in (8, 9))
    # A group commit runs each distinct call once: one fsync per folder, not per object.
    assert first.durable_publish == second.durable_publish
    assert len({first.durable_publish, second.durable_publish}) == 1
    first.discard()
    second.discard()


def test_a_discarded_staging_leaves_nothing(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "spooled.dcm"
    source.write_bytes(b"never published")
    store.stage("dicom/1.2.3/1.2.3.4/1.2.3.4.7.dcm", source).discard()
    assert store.stat("dicom/1.2.3/1.2.3.4/1.2.3.4.7.dcm") is None
    assert list(store.list("dicom/1.2.3/1.2.3.4/")) == []


def test_missing_object_is_reported_not_invented(store: ObjectStore) -> None:
    assert store.stat("dicom/none.dcm") is None
    with pytest.raises(ObjectNotFound), store.open("dicom/none.dcm") as chunks:
        b"".join(chunks)


def test_list_returns_keys_under_a_prefix_sorted(store: ObjectStore) -> None:
    for key in ("derived/s1/b.json", "derived/s1/a.json", "derived/s2/c.json", "models/x/1/m"):
        store.put(key, io.BytesIO(b"{}"))
    assert list(store.list("derived/s1/")) == ["derived/s1/a.json", "derived/s1/b.json"]


def test_delete_removes_the_object(store: ObjectStore) -> None:
    store.put("uploads/u1/part-0", io.BytesIO(b"x"))
    store.delete("uploads/u1/part-0")
    assert store.stat("uploads/u1/part-0") is None
    store.delete("uploads/u1/part-0")  # deleting twice is not an error


def test_put_replaces_an_object_whole(store: ObjectStore) -> None:
    store.put("reports/r1/v1.json", io.BytesIO(b"first version, longer"))
    store.put("reports/r1/v1.json", io.BytesIO(b"second"))
    assert read_all(store, "reports/r1/v1.json") == b"second"


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs/key", "a//b", "a/./b", "", "dicom/a b"])
def test_keys_that_could_escape_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        store.put(key, io.BytesIO(b"x"))


def _stream_digest(chunks: Iterator[bytes]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


@pytest.mark.slow
def test_200_mb_object_streams_in_and_out_identical_in_bounded_memory(
    store: ObjectStore,
) -> None:
    size = 200 * 1024 * 1024
    source = PatternStream(size)
    tracemalloc.start()
    try:
        store.put("dicom/big/cine/loop.dcm", io.BufferedReader(source, 1024 * 1024))
        with store.open("dicom/big/cine/loop.dcm") as chunks:
            digest, got = _stream_digest(chunks)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (digest, got) == (source.digest.hexdigest(), size)
    # Far below the object size: one multipart part plus read buffers, not the object.
    assert peak < 64 * 1024 * 1024, f"peak traced memory {peak / 2**20:.1f} MiB"
