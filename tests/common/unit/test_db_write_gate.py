"""SQLite writers: the gate taken at a transaction's first write, and the grouped WAL fsync."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from sonobridge.common import db, sqlite_writers
from sonobridge.common.sqlite_writers import WalSync, gate_of


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = db.create_db_engine(f"sqlite:///{tmp_path / 'gate.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    yield engine
    engine.dispose()


def _gate(tmp_path: Path) -> threading.Lock:
    return gate_of(str(tmp_path / "gate.sqlite3"))


def test_a_write_holds_the_gate_until_commit_and_a_read_never_takes_it(
    engine: Engine, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        conn.execute(text("SELECT COUNT(*) FROM t"))
        assert not _gate(tmp_path).locked()
        conn.execute(text("INSERT INTO t VALUES (1)"))
        assert _gate(tmp_path).locked()
    assert not _gate(tmp_path).locked()


def test_a_failed_write_releases_the_gate_with_its_rollback(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    assert not _gate(tmp_path).locked()


def test_an_autocommit_write_does_not_keep_the_gate(engine: Engine, tmp_path: Path) -> None:
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        assert not _gate(tmp_path).locked()


def test_engines_on_one_file_share_a_gate_and_concurrent_writers_all_commit(
    engine: Engine, tmp_path: Path
) -> None:
    other = db.create_db_engine(f"sqlite:///{tmp_path / 'gate.sqlite3'}")
    engines = [engine, other]

    def write(worker: int) -> None:
        for i in range(25):
            with engines[worker % 2].begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (:k)"), {"k": worker * 100 + i})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.dispose()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM t")).scalar_one() == 100
    assert not _gate(tmp_path).locked()


def test_a_commit_returns_after_an_fsync_of_the_wal_and_a_read_or_rollback_syncs_nothing(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    monkeypatch.setattr(WalSync, "_fsync", lambda self: synced.append(self.wal))
    with engine.begin() as conn:
        conn.execute(text("SELECT COUNT(*) FROM t"))
    with pytest.raises(RuntimeError), engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        raise RuntimeError("rolled back")
    assert synced == []
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))
    wal = tmp_path / "gate.sqlite3-wal"
    assert synced == [wal] and wal.exists()


def test_commits_arriving_during_an_fsync_share_the_next_one(tmp_path: Path) -> None:
    wal = WalSync(tmp_path / "x-wal")
    started, release = threading.Event(), threading.Event()
    rounds: list[int] = []

    def fsync() -> None:
        rounds.append(wal._requested)
        started.set()
        release.wait(30)

    wal._fsync = fsync  # type: ignore[method-assign]
    first = threading.Thread(target=wal.sync)
    first.start()
    assert started.wait(30)
    later = [threading.Thread(target=wal.sync) for _ in range(3)]
    for thread in later:
        thread.start()
    while wal._requested < 4:  # all three are registered, waiting for the round in progress
        time.sleep(0.001)
    release.set()
    for thread in [first, *later]:
        thread.join(30)
    # The first round covered only the first commit; one more covered the three that came
    # while it ran.
    assert rounds == [1, 4]


def test_a_commit_leaves_the_checkpoint_to_a_thread_of_its_own(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_writers, "CHECKPOINT_COMMITS", 1)
    database = tmp_path / "gate.sqlite3"
    checkpoints = db.gated_connection_class(str(database)).wal.checkpoints
    assert checkpoints is not None
    with engine.connect() as conn:
        # SQLite's own checkpoint would run inside the commit that crosses 1,000 pages.
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    before = checkpoints.done
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (7)"))
    deadline = time.monotonic() + 30
    while checkpoints.done == before and time.monotonic() < deadline:
        time.sleep(0.01)
    # Checkpointed: the database file alone, without its log, now holds the row.
    copy = tmp_path / "copy.sqlite3"
    shutil.copyfile(database, copy)
    with sqlite3.connect(copy) as alone:
        assert alone.execute("SELECT k FROM t").fetchall() == [(7,)]


def _spill_files() -> list[str]:
    """Return this process's open SQLite temporary files (spilled statement journals)."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue  # closed since the listing
        if "etilqs_" in target:
            found.append(target)
    return found


def test_a_statement_journal_stays_in_memory_instead_of_spilling_to_a_temp_file(
    tmp_path: Path,
) -> None:
    # A savepoint over rows with overflow pages journals far more than SQLite's 64 KiB spill
    # threshold, as a group commit's step storing an instance row does: each spill was a new
    # file in /var/tmp and a write per page.
    engine = db.create_db_engine(f"sqlite:///{tmp_path / 'journal.sqlite3'}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY, body TEXT)"))
            for k in range(10):
                conn.execute(text("INSERT INTO t VALUES (:k, :b)"), {"k": k, "b": "x" * 40000})
        with engine.begin() as conn:
            conn.execute(text("BEGIN IMMEDIATE"))  # as the group commit opens its transaction
            nested = conn.begin_nested()
            conn.execute(text("UPDATE t SET body = :b"), {"b": "y" * 40000})
            assert _spill_files() == []
            nested.commit()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM t WHERE body LIKE 'y%'")).scalar() == 10
    finally:
        engine.dispose()
