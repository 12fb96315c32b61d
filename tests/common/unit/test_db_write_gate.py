"""The SQLite write gate: taken at a transaction's first write, handed on at its end."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from sonobridge.common import db


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = db.create_db_engine(f"sqlite:///{tmp_path / 'gate.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    return engine


def _gate(tmp_path: Path) -> threading.Lock:
    return db._GATES[str((tmp_path / "gate.sqlite3").resolve())]


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
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM t")).scalar_one() == 100
    assert not _gate(tmp_path).locked()
