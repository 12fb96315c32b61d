"""Benchmark: one delivery-retention batch as the outbox grows, by index range vs key IN.

Fills a fresh outbox with N shipped rows (most past the retention), then times one batch
delete, rolled back each time so every try sees the same table, in interleaved pairs: the
first form written, `id IN (SELECT id ... ORDER BY published_at LIMIT n)`, kept here as the
baseline, and `DeliveryRetention`'s range of the age index (its boundary query included). Usage:
    uv run python bench/common/bench_delivery_retention.py [--url URL] [--sizes 10000 200000]
Without --url it runs on a SQLite file; a PostgreSQL URL takes a database it may fill.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import Connection, Engine, MetaData, Table, delete, insert, select, text
from sqlalchemy.sql import Delete

from sonobridge.common.db import create_db_engine
from sonobridge.common.delivery import delivery_tables
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.retention import DeliveryRetention

BATCH = 500


def _key_in(outbox: Table, cutoff: datetime, _conn: Connection) -> Delete:
    """The baseline: delete the keys a LIMIT subquery picks."""
    aged = outbox.c.published_at
    chosen = select(outbox.c.id).where(aged < cutoff).order_by(aged).limit(BATCH)
    return delete(outbox).where(outbox.c.id.in_(chosen))


def _ranged(retention: DeliveryRetention, cutoff: datetime, conn: Connection) -> Delete:
    """The retention's batch: find the boundary, then delete up to it (timed together)."""
    boundary = conn.execute(retention._boundary("outbox", cutoff)).scalar()
    return retention._batch("outbox", cutoff, boundary)


def _fill(engine: Engine, outbox: Table, count: int) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "event_id": str(uuid.uuid4()),
            "topic": "t",
            "key": "k",
            "source": "s",
            "type": "t",
            "time": now,
            "data": b"x" * 200,
            "created_at": now - timedelta(minutes=5 * n),
            "published_at": now - timedelta(minutes=5 * n),
        }
        for n in range(count)
    ]
    with engine.begin() as conn:
        for start in range(0, count, 10_000):
            conn.execute(insert(outbox), rows[start : start + 10_000])
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:  # as autovacuum would have by then
            conn.execute(text("ANALYZE outbox"))


def _timed_ms(engine: Engine, batch: Callable[[Connection], Delete]) -> float:
    with engine.connect() as conn:
        transaction = conn.begin()
        started = time.perf_counter()
        deleted = conn.execute(batch(conn)).rowcount
        elapsed = (time.perf_counter() - started) * 1000
        transaction.rollback()
    assert deleted >= BATCH, deleted
    return elapsed


def main() -> None:
    """Print median ms per batch for each form and the ratio, per table size."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}")
    for size in args.sizes:
        url = args.url or f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
        outbox, inbox = delivery_tables(metadata := MetaData())
        engine = create_db_engine(url)
        metadata.drop_all(engine)
        metadata.create_all(engine)
        _fill(engine, outbox, size)
        retention = DeliveryRetention(
            engine,
            outbox,
            inbox,
            ServiceMetrics("bench"),
            outbox_retention=timedelta(days=7),
            inbox_retention=timedelta(days=14),
            batch_size=BATCH,
        )
        cutoff = datetime.now(UTC) - timedelta(days=7)
        baseline, ranged = [], []
        for _ in range(args.repeat):  # interleaved: drift in load hits both forms alike
            baseline.append(_timed_ms(engine, partial(_key_in, outbox, cutoff)))
            ranged.append(_timed_ms(engine, partial(_ranged, retention, cutoff)))
        b, r = statistics.median(baseline), statistics.median(ranged)
        print(
            f"{engine.dialect.name} {size:>7} rows: key IN {b:7.2f} ms, range {r:7.2f} ms, "
            f"ratio {b / r:5.1f}x"
        )
        metadata.drop_all(engine)
        engine.dispose()
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
