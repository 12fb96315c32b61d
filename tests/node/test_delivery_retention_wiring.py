"""The single node runs the delivery retention in every service, and one log retention."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, MetaData, Table, func, insert, select

from sonobridge.common.db import create_db_engine
from sonobridge.common.delivery import delivery_tables
from sonobridge.node.edition import SERVICES, NodePorts, SingleNode

OUTBOX, INBOX = delivery_tables(MetaData())


def _age_rows(engine: Engine, now: datetime) -> None:
    """Three outbox rows (shipped 8 days ago, unshipped, shipped now), two inbox records."""
    with engine.begin() as conn:
        for shipped in (now - timedelta(days=8), None, now):
            conn.execute(
                insert(OUTBOX).values(
                    event_id=str(uuid.uuid4()),
                    topic="t",
                    key="k",
                    source="s",
                    type="t",
                    time=now,
                    data=b"x",
                    created_at=now - timedelta(days=9),
                    published_at=shipped,
                )
            )
        for age in (timedelta(days=15), timedelta(days=1)):
            conn.execute(
                insert(INBOX).values(
                    consumer_group="g",
                    event_id=str(uuid.uuid4()),
                    topic="t",
                    type="t",
                    processed_at=now - age,
                )
            )


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_each_service_purges_its_own_expired_outbox_and_inbox_rows(tmp_path: Path) -> None:
    node = SingleNode(tmp_path / "node", ports=NodePorts.ephemeral())
    engines = {
        name: create_db_engine(f"sqlite:///{node.data_dir / f'{name}.sqlite3'}")
        for name in SERVICES
    }
    stop = threading.Event()
    workers = [
        threading.Thread(target=host.workers["delivery-retention"], args=(stop,))
        for host in node.hosts.values()
    ]

    def counts() -> dict[str, tuple[int, int]]:
        return {name: (_count(e, OUTBOX), _count(e, INBOX)) for name, e in engines.items()}

    try:
        for engine in engines.values():
            _age_rows(engine, datetime.now(UTC))
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while counts() != dict.fromkeys(SERVICES, (2, 1)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)
        for engine in engines.values():
            engine.dispose()
        node.stop()
    # In each: the week-old shipped row and the fortnight-old record went; the rest stayed.
    assert counts() == dict.fromkeys(SERVICES, (2, 1))


def test_the_node_purges_its_shared_event_log_once_every_group_is_past(tmp_path: Path) -> None:
    node = SingleNode(tmp_path / "node", ports=NodePorts.ephemeral())
    keepers = [name for name, host in node.hosts.items() if "event-log-retention" in host.workers]
    # One worker for the one log, in maintenance: its /metrics carries the log's gauges.
    assert keepers == ["maintenance"]
    host = node.hosts["maintenance"]
    path = node.data_dir / "events.sqlite3"
    group = node.bus.subscribe("g", ["t"])
    node.bus.send_many([("t", b"k", str(n).encode(), []) for n in range(4)])
    for record in group.poll(1.0):
        if record.offset < 2:  # the group is done with two records, not yet with the others
            group.commit(record)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE records SET appended_at = appended_at - ?", (15 * 86400,))
    stop = threading.Event()
    worker = threading.Thread(target=host.workers["event-log-retention"], args=(stop,))

    def offsets() -> list[int]:
        with sqlite3.connect(path) as conn:
            return [r[0] for r in conn.execute('SELECT "offset" FROM records ORDER BY 1')]

    try:
        worker.start()
        deadline = time.monotonic() + 30
        while offsets() != [2, 3] and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join(10)
        group.close()
        node.stop()
    # Past the default retention (the 14-day redelivery horizon): the two committed records
    # went, the two the group has not finished stayed.
    assert offsets() == [2, 3]
    purged = host.app.state.metrics.event_log_records_purged.labels("t")._value.get()
    assert purged == 2
