"""Benchmark: how long one event-log retention batch holds SQLite's write lock, by log size.

Fills a fresh embedded log with N records of 2 KiB (all past the retention, one group done
with them), then times in interleaved pairs one purge batch of 500 records (its bound reads,
delete and commit: the whole write transaction) and, as the baseline, one publish of 500
records (`send_many`, the largest write a relay makes at once). The write lock a publisher
may wait for is the longer of the two. Usage:
    uv run python bench/common/bench_event_log_retention.py [--sizes 10000 200000] [--pairs 15]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path

from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.bus.retention import EventLogRetention
from sonobridge.common.metrics import ServiceMetrics

BATCH = 500
VALUE = os.urandom(2048)


def _fill(bus: EmbeddedEventBus, path: Path, count: int) -> None:
    for start in range(0, count, 5000):
        bus.send_many([("t", b"k", VALUE, []) for _ in range(min(5000, count - start))])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE records SET appended_at = appended_at - ?", (30 * 86400,))
        conn.execute("INSERT INTO group_offsets VALUES ('g', 't', ?)", (count + 10**9,))


def _ms(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    """Print median milliseconds per batch and publish for each log size."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 200_000])
    parser.add_argument("--pairs", type=int, default=15)
    args = parser.parse_args()
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.sqlite3"
            bus = EmbeddedEventBus(path)
            _fill(bus, path, size)
            retention = EventLogRetention(
                path, ServiceMetrics("bench"), retention=timedelta(days=14), batch_size=BATCH
            )
            records = [("t", b"k", VALUE, []) for _ in range(BATCH)]
            purge, publish = [], []
            for _ in range(args.pairs):
                purge.append(_ms(partial(retention.purge_topic, "t")))
                publish.append(_ms(partial(bus.send_many, records)))
            retention.close()
            bus.close()
        print(
            f"log {size:>7} records: purge batch {statistics.median(purge):6.1f} ms, "
            f"publish {BATCH} {statistics.median(publish):6.1f} ms (medians of {args.pairs}; "
            f"load {os.getloadavg()[0]:.2f})"
        )


if __name__ == "__main__":
    main()
