"""Group commit on a SQLite file: shared commits, savepoints per step, retries alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Engine, event, text

from sonobridge.common import db
from sonobridge.common.delivery import Outbox
from sonobridge.ingest.adapters.group_commit import GroupCommit
from sonobridge.ingest.adapters.orm import outbox
from sonobridge.ingest.adapters.repository import SqlWork
from sonobridge.ingest.ports import Collision, Work


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = db.create_db_engine(f"sqlite:///{tmp_path / 'group.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    yield engine
    engine.dispose()


def _commits(engine: Engine) -> list[int]:
    seen: list[int] = []
    event.listen(engine, "commit", lambda _conn: seen.append(1))
    return seen


def _rows(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT k FROM t ORDER BY k")).scalars())


def _insert(k: int) -> Callable[[Work], int]:
    def step(work: Work) -> int:
        cast(SqlWork, work).session.execute(text("INSERT INTO t VALUES (:k)"), {"k": k})
        return k

    return step


def _in_one_group(grouped: GroupCommit, steps: list[Callable[[Work], int]]) -> list[object]:
    """Run `steps` from one thread each, all queued behind a first step that waits for them."""
    running, queued = threading.Event(), threading.Event()
    outcomes: list[object] = [object()] * len(steps)

    def first(work: Work) -> int:
        running.set()
        assert queued.wait(30)
        return _insert(0)(work)

    def call(i: int) -> None:
        try:
            outcomes[i] = grouped(steps[i])
        except Exception as exc:
            outcomes[i] = exc

    leader = threading.Thread(target=grouped, args=(first,))
    leader.start()
    assert running.wait(30)
    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(steps))]
    for thread in threads:
        thread.start()
    while len(grouped._queue) < len(steps):
        time.sleep(0.001)
    queued.set()
    for thread in [leader, *threads]:
        thread.join(30)
    return outcomes


def test_steps_queued_behind_a_group_share_one_commit(engine: Engine) -> None:
    grouped = GroupCommit(db.session_factory(engine), Outbox(outbox))
    commits = _commits(engine)
    outcomes = _in_one_group(grouped, [_insert(k) for k in (1, 2, 3, 4)])
    assert outcomes == [1, 2, 3, 4]
    assert _rows(engine) == [0, 1, 2, 3, 4]
    # The first step's group, then one group for the four that queued behind it.
    assert len(commits) == 2


def test_a_failing_step_undoes_only_its_own_writes_and_gets_its_own_error(
    engine: Engine,
) -> None:
    grouped = GroupCommit(db.session_factory(engine), Outbox(outbox))

    def half_then_fail(work: Work) -> int:
        _insert(20)(work)
        raise ValueError("refused after a write")

    outcomes = _in_one_group(grouped, [_insert(1), half_then_fail, _insert(1), _insert(3)])
    assert outcomes[0] == 1 and outcomes[3] == 3
    assert isinstance(outcomes[1], ValueError)
    # A unique clash with a row of the same transaction is that step's Collision alone.
    assert isinstance(outcomes[2], Collision)
    assert _rows(engine) == [0, 1, 3]


def test_a_group_that_cannot_commit_runs_each_step_alone(engine: Engine) -> None:
    grouped = GroupCommit(db.session_factory(engine), Outbox(outbox))
    failures = [OSError("folder sync failed once")]

    def sync_once() -> None:
        if failures:
            raise failures.pop()

    def with_action(k: int) -> Callable[[Work], int]:
        def step(work: Work) -> int:
            work.before_commit(sync_once)
            return _insert(k)(work)

        return step

    outcomes = _in_one_group(grouped, [with_action(1), with_action(2)])
    assert outcomes == [1, 2] and _rows(engine) == [0, 1, 2]


def test_before_commit_actions_run_once_each_after_the_writes_and_before_the_commit(
    engine: Engine,
) -> None:
    grouped = GroupCommit(db.session_factory(engine), Outbox(outbox))
    seen: list[list[int]] = []

    def folder_sync() -> None:
        seen.append(_rows(engine))  # another connection: sees only what is committed

    def with_action(k: int) -> Callable[[Work], int]:
        def step(work: Work) -> int:
            _insert(k)(work)
            work.before_commit(folder_sync)
            return k

        return step

    assert _in_one_group(grouped, [with_action(1), with_action(2)]) == [1, 2]
    assert seen == [[0]]  # once for the group of two, with neither row committed yet
    assert _rows(engine) == [0, 1, 2]


def test_many_concurrent_callers_all_get_their_result_and_the_lead_ends(engine: Engine) -> None:
    grouped = GroupCommit(db.session_factory(engine), Outbox(outbox), max_group=3)
    results: list[int] = []

    def call(k: int) -> None:
        results.append(grouped(_insert(k)))

    threads = [threading.Thread(target=call, args=(k,)) for k in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == list(range(40)) and _rows(engine) == list(range(40))
    assert not grouped._leading and grouped._queue == []


def test_a_step_alone_in_its_group_runs_once_without_a_savepoint(engine: Engine) -> None:
    grouped = GroupCommit(db.session_factory(engine), Outbox(outbox))
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, sql, *_a: statements.append(sql))
    runs: list[int] = []

    def write_then_fail(work: Work) -> int:
        runs.append(1)
        _insert(5)(work)
        raise ValueError("refused after a write")

    assert grouped(_insert(4)) == 4
    with pytest.raises(ValueError, match="refused after a write"):
        grouped(write_then_fail)
    # Its failure rolled back its write, and it was not run again alone.
    assert runs == [1] and _rows(engine) == [4]
    assert not any("SAVEPOINT" in sql for sql in statements)
    assert grouped(_insert(6)) == 6 and _rows(engine) == [4, 6]
