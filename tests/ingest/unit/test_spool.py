"""The spool creates each file afresh and privately, and gives back what it opened."""

from __future__ import annotations

import gc
import hashlib
import os
import stat
from pathlib import Path

import pytest

from sonobridge.ingest.adapters.spool import Spool
from sonobridge.ingest.domain.validation import TooLarge


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_spooled_files_are_new_private_files_holding_what_was_written(tmp_path: Path) -> None:
    spool = Spool(tmp_path, limit=1 << 20)
    first, second = spool.new(), spool.new()
    assert first.path != second.path
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    first.write(b"abc")
    first.write(memoryview(b"defg")[1:])
    first.close()
    assert first.path.read_bytes() == b"abcefg"
    assert first.size == 6
    assert first.sha256 == hashlib.sha256(b"abcefg").hexdigest()
    # Written again after closing, it appends.
    first.write(b"!")
    first.close()
    assert first.path.read_bytes() == b"abcefg!"
    for spooled in (first, second):
        spooled.discard()
        assert not spooled.path.exists()


def test_a_name_taken_by_another_process_is_skipped_not_overwritten(tmp_path: Path) -> None:
    spool = Spool(tmp_path, limit=1 << 20)
    probe = spool.new()
    probe.discard()
    taken = Path(str(probe.path).replace("-0.dcm", "-1.dcm"))
    taken.write_bytes(b"someone else's")
    spooled = spool.new()
    assert spooled.path != taken
    assert taken.read_bytes() == b"someone else's"
    spooled.discard()


def test_descriptors_are_given_back_also_when_a_file_is_dropped_unclosed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, limit=4)
    before = _open_descriptors()
    with spool.new() as spooled, pytest.raises(TooLarge):
        spooled.write(b"12345")
    dropped = spool.new()
    dropped.write(b"12")
    del dropped
    gc.collect()
    assert _open_descriptors() == before
