"""The outbox relay wakes when a transaction that staged an event commits, not at its next poll."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, MetaData

from sonobridge.common.db import create_db_engine, session_factory
from sonobridge.common.delivery import Outbox, OutboxRelay, committed_signal, delivery_tables
from sonobridge.common.envelope import CloudEvent
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.periodic import Periodic
from sonobridge.common.sqlite_writers import gate_of


def _event(n: int) -> CloudEvent:
    return CloudEvent(
        id=f"e{n}", source="test", type="t", time=datetime.now(UTC), key="k", data=b"x"
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A service's SQLite database, closed after the test."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'service.sqlite3'}")
    yield engine
    engine.dispose()


def test_a_commit_that_staged_an_event_raises_the_flag_and_a_rollback_does_not(
    engine: Engine,
) -> None:
    metadata = MetaData()
    outbox, _inbox = delivery_tables(metadata)
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


class _GateWatchingBus:
    """A bus that notes, at each send, whether the relay holds the database's write gate."""

    def __init__(self, database: Path) -> None:
        self.gate = gate_of(str(database))
        self.gate_held: list[bool] = []

    def send(self, topic: str, key: bytes | None, value: bytes, headers: Any) -> None:
        self.gate_held.append(self.gate.locked())


def test_the_relay_sends_every_event_before_it_takes_the_write_gate(
    engine: Engine, tmp_path: Path
) -> None:
    metadata = MetaData()
    outbox, _inbox = delivery_tables(metadata)
    database = tmp_path / "service.sqlite3"
    metadata.create_all(engine)
    with session_factory(engine).begin() as session:
        for n in range(3):
            Outbox(outbox).add(session, "topic", _event(n))
    bus = _GateWatchingBus(database)
    relay = OutboxRelay(engine, outbox, bus, ServiceMetrics("relay", CollectorRegistry()))  # type: ignore[arg-type]
    assert relay.ship_once() == 3
    # On the single node each send is an fsync: a writer waiting at the gate must not wait on it.
    assert bus.gate_held == [False, False, False]
    assert relay.ship_once() == 0


def test_flags_raised_while_the_worker_lingers_start_one_pass_not_one_each() -> None:
    stop = threading.Event()
    wake = threading.Event()
    passes: list[float] = []
    worker = threading.Thread(
        target=Periodic(
            "relay", lambda: passes.append(time.monotonic()), 60.0, wake=wake, linger=0.5
        ),
        args=(stop,),
    )
    worker.start()
    deadline = time.monotonic() + 10
    while not passes and time.monotonic() < deadline:
        time.sleep(0.01)
    for _ in range(5):  # five commits within the linger after the first pass
        wake.set()
        time.sleep(0.02)
    while len(passes) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    stop.set()
    worker.join(10)
    assert not worker.is_alive()
    assert len(passes) == 2
    # The gathered commits were shipped once the linger ended, not at the next poll (60 s).
    assert 0.5 <= passes[1] - passes[0] < 10
