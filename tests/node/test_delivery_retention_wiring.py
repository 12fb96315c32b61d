"""Every service on the single node runs the delivery retention on its own SQLite database."""

from __future__ import annotations

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
