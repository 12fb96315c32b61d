"""The outbox relay wakes when a transaction that staged an event commits, not at its next poll."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import MetaData

from sonobridge.common.db import create_db_engine, session_factory
from sonobridge.common.delivery import Outbox, committed_signal, delivery_tables
from sonobridge.common.envelope import CloudEvent
from sonobridge.common.periodic import Periodic


def _event(n: int) -> CloudEvent:
    return CloudEvent(
        id=f"e{n}", source="test", type="t", time=datetime.now(UTC), key="k", data=b"x"
    )


def test_a_commit_that_staged_an_event_raises_the_flag_and_a_rollback_does_not(
    tmp_path: Path,
) -> None:
    metadata = MetaData()
    outbox, _inbox = delivery_tables(metadata)
    engine = create_db_engine(f"sqlite:///{tmp_path / 'service.sqlite3'}")
    metadata.create_all(engine)
    sessions = session_factory(engine)
    flag = committed_signal(outbox)
    flag.clear()

    with pytest.raises(RuntimeError), sessions.begin() as session:
        Outbox(outbox).add(session, "topic", _event(1))
        raise RuntimeError("use case failed")
    assert not flag.is_set()

    with sessions.begin() as session:
        Outbox(outbox).add(session, "topic", _event(2))
        assert not flag.is_set()
    assert flag.is_set()


def test_a_raised_flag_starts_the_next_pass_at_once() -> None:
    stop = threading.Event()
    wake = threading.Event()
    passes: list[float] = []

    def work() -> None:
        passes.append(time.monotonic())
        if len(passes) == 2:
            stop.set()

    worker = threading.Thread(
        target=Periodic("relay", work, interval=60.0, wake=wake), args=(stop,)
    )
    worker.start()
    deadline = time.monotonic() + 10
    while not passes and time.monotonic() < deadline:
        time.sleep(0.01)
    wake.set()
    worker.join(10)
    assert not worker.is_alive()
    assert len(passes) == 2
    assert passes[1] - passes[0] < 10
