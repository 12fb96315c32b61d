"""A crash at any step of storing a small instance leaves it indexed and on disk, or nothing."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ingest.unit.handlers.fakes import Fakes, Tables, dicom_file, fakes, operator

from sonobridge.common.objects.localdir import FolderSync, LocalDirObjectStore, LocalStagedObject
from sonobridge.ingest.domain.model import Channel
from sonobridge.ingest.handlers import instances, recovery

KEY = "dicom/1.2.3/1.2.3.9/1.2.3.1.dcm"


class _PowerCut(BaseException):
    """Stops the request where the power went: no handler of the product may catch it."""


def _after(method: Callable[..., Any], point: str, cut: Callable[[str], None]) -> Any:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = method(*args, **kwargs)
        cut(point)
        return result

    return wrapped


@pytest.mark.parametrize("point", ["staged", "linked", "folder synced", "committed"])
def test_start_up_after_a_crash_finds_the_instance_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    f = fakes(tmp_path / "spool")
    f.deps.store = LocalDirObjectStore(tmp_path / "objects")
    left: list[Tables] = []

    def cut(at: str) -> None:
        if at == point:
            # What the disk holds: every file written so far, and only committed index rows.
            shutil.copytree(tmp_path / "objects", tmp_path / "after")
            left.append(copy.deepcopy(f.db.tables))
            raise _PowerCut(at)

    monkeypatch.setattr(
        LocalDirObjectStore, "stage", _after(LocalDirObjectStore.stage, "staged", cut)
    )
    monkeypatch.setattr(
        LocalStagedObject, "publish", _after(LocalStagedObject.publish, "linked", cut)
    )
    monkeypatch.setattr(FolderSync, "__call__", _after(FolderSync.__call__, "folder synced", cut))
    discard = LocalStagedObject.discard

    def discard_after_commit(staged: LocalStagedObject) -> None:
        cut("committed")  # discard() is the first thing after the commit
        discard(staged)

    monkeypatch.setattr(LocalStagedObject, "discard", discard_after_commit)

    with pytest.raises(_PowerCut), f.spooled(dicom_file()) as spooled:
        instances.store_instance(f.deps, operator(), spooled, channel=Channel.STOW)

    restarted = _restart(tmp_path / "spool-2", tmp_path / "after", left[0])
    indexed = restarted.tables.instances.get("1.2.3.1")
    kept = list(restarted.deps.store.list("dicom/"))
    if point == "committed":
        assert indexed is not None and indexed.object_key == KEY and kept == [KEY]
        assert (tmp_path / "after" / "data" / KEY).read_bytes() == dicom_file()
    else:
        assert indexed is None and kept == []
    assert list((tmp_path / "after" / ".staged").iterdir()) == []


def _restart(spool: Path, objects: Path, tables: Tables) -> Fakes:
    """Run ingest's start-up sweep (as bootstrap does) over what the crash left."""
    f = fakes(spool)
    f.db.tables = tables
    store = LocalDirObjectStore(objects)
    f.deps.store = store
    store.purge_temp()
    recovery.drop_unindexed(f.deps, store.take_interrupted())
    return f
