"""Retention of the embedded event log: drop old records every consumer group is done with."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sonobridge.common.bus.embedded import connect_log
from sonobridge.common.bus.ports import dlq_topic
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.periodic import Periodic
from sonobridge.common.settings import DeliverySettings

if TYPE_CHECKING:
    from sonobridge.common.host import Worker

DEAD_LETTER_SUFFIX = dlq_topic("")

# The prefix of a topic's log that may go: the first `batch` records, each older than the
# cutoff, stopping at the first one that is not (a clock set back leaves no hole behind it).
_DUE_END = (
    'SELECT MIN("offset") FROM (SELECT "offset", appended_at FROM records '
    'WHERE topic = ? ORDER BY "offset" LIMIT ?) WHERE appended_at >= ?'
)


class EventLogRetention:
    """Delete, per topic, the oldest records that are past the retention and fully consumed.

    Only a prefix of each topic goes, and never past the lowest offset a group has committed
    (a group that subscribed but never committed holds the whole topic): a lagging or stopped
    consumer finds every record it has not finished. The newest record of a topic always
    stays, because the next offset is counted from it; dead-letter topics are kept whole.
    Each batch is one short write transaction, so a crash rolls back at most one batch and
    publishers wait for at most one.
    """

    def __init__(
        self,
        path: Path,
        metrics: ServiceMetrics,
        *,
        retention: timedelta,
        batch_size: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if batch_size < 1 or retention < timedelta(0):
            raise ValueError("batch_size must be >= 1 and retention >= 0")
        self.metrics = metrics
        self.retention = retention
        self.batch_size = batch_size
        # Seconds since the epoch, as the log stamps `appended_at`.
        self.clock = clock
        self._conn = connect_log(path)

    def topics(self) -> list[str]:
        """The topics in the log, each found by one index seek (no scan of the records)."""
        found: list[str] = []
        row = self._conn.execute("SELECT MIN(topic) FROM records").fetchone()
        while row[0] is not None:
            found.append(row[0])
            row = self._conn.execute(
                "SELECT MIN(topic) FROM records WHERE topic > ?", (row[0],)
            ).fetchone()
        return found

    def purge_topic(self, topic: str) -> int:
        """Delete one batch of `topic`'s due records in one transaction; return how many."""
        cutoff = self.clock() - self.retention.total_seconds()
        # IMMEDIATE: the write lock before the reads, so no commit or join moves the bounds
        # between reading them and deleting.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            first, last = self._conn.execute(
                'SELECT MIN("offset"), MAX("offset") FROM records WHERE topic = ?', (topic,)
            ).fetchone()
            committed = self._conn.execute(
                "SELECT MIN(next_offset) FROM group_offsets WHERE topic = ?", (topic,)
            ).fetchone()[0]
            young = self._conn.execute(_DUE_END, (topic, self.batch_size, cutoff)).fetchone()[0]
            purged = 0
            if first is not None:
                bounds = (first + self.batch_size, last, committed, young)
                end = min(b for b in bounds if b is not None)
                purged = self._conn.execute(
                    'DELETE FROM records WHERE topic = ? AND "offset" < ?', (topic, end)
                ).rowcount
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        if purged > 0:
            self.metrics.event_log_records_purged.labels(topic).inc(purged)
        return purged

    def purge_once(self) -> dict[str, int]:
        """Purge one batch of each topic; once caught up, report the log's size and ages."""
        # Dead letters stay: no group reads them on a node, so only age would ever delete them,
        # and they are what an operator has to look at (Kafka keeps them 30 days, not 7).
        purged = {
            topic: self.purge_topic(topic)
            for topic in self.topics()
            if not topic.endswith(DEAD_LETTER_SUFFIX)
        }
        if not self._full(purged):
            self.measure()
        return purged

    def measure(self) -> None:
        """Set the gauges: records and oldest age per topic, used and free bytes of the file."""
        now = self.clock()
        for topic in self.topics():
            # A topic's offsets stay contiguous (only a prefix is ever deleted): two seeks count.
            first, last = self._conn.execute(
                'SELECT MIN("offset"), MAX("offset") FROM records WHERE topic = ?', (topic,)
            ).fetchone()
            appended = self._conn.execute(
                'SELECT appended_at FROM records WHERE topic = ? AND "offset" = ?', (topic, first)
            ).fetchone()[0]
            self.metrics.event_log_records.labels(topic).set(last - first + 1)
            self.metrics.event_log_oldest_record_age.labels(topic).set(max(0.0, now - appended))
        page_size, pages, free = (
            self._conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("page_size", "page_count", "freelist_count")
        )
        self.metrics.event_log_size.labels("used").set((pages - free) * page_size)
        self.metrics.event_log_size.labels("free").set(free * page_size)

    def run(self, stop: threading.Event, interval: float) -> None:
        """Purge every `interval` seconds until `stop` is set; a backlog goes batch after batch."""
        Periodic(
            "event log retention",
            self.purge_once,
            interval,
            jitter=0.1,
            # A full batch means more are due: the next at once, each its own transaction.
            again=self._full,
        )(stop)

    def close(self) -> None:
        """Close the retention's own connection to the log."""
        self._conn.close()

    def _full(self, purged: object) -> bool:
        return isinstance(purged, dict) and max(purged.values(), default=0) >= self.batch_size


def event_log_retention(path: Path, metrics: ServiceMetrics, delivery: DeliverySettings) -> Worker:
    """The worker that purges the embedded log at `path` as the delivery settings say."""

    def run(stop: threading.Event) -> None:
        # Opened in the worker: a node that never starts holds no extra connection.
        with contextlib.closing(
            EventLogRetention(
                path,
                metrics,
                retention=delivery.event_log_retention(),
                batch_size=delivery.retention_batch_size,
            )
        ) as retention:
            retention.run(stop, delivery.retention_interval_seconds)

    return run
