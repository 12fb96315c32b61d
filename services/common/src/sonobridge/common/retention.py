"""Delivery retention: purge shipped outbox rows and expired inbox records in small batches."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Engine, Select, Table, delete, func, select
from sqlalchemy.sql import Delete

from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.periodic import Periodic


class Purged(NamedTuple):
    """Rows one pass deleted from each table."""

    outbox: int
    inbox: int


class DeliveryRetention:
    """Delete published outbox rows and inbox records once they are older than their retention.

    An unpublished outbox row is never deleted, whatever its age: only rows whose
    `published_at` is set and older than the outbox retention match. Each batch is its own
    short transaction, so a crash mid-purge rolls back at most one batch (the rows stay) and
    SQLite's write lock is never held for more than one batch.
    """

    def __init__(
        self,
        engine: Engine,
        outbox: Table,
        inbox: Table,
        metrics: ServiceMetrics,
        *,
        outbox_retention: timedelta,
        inbox_retention: timedelta,
        batch_size: int = 500,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if batch_size < 1 or min(outbox_retention, inbox_retention) < timedelta(0):
            raise ValueError("batch_size must be >= 1 and retentions >= 0")
        self.engine = engine
        self.metrics = metrics
        self.batch_size = batch_size
        self.clock = clock
        self._retention = {"outbox": outbox_retention, "inbox": inbox_retention}
        # The age each table's purge goes by: when a row was shipped, or first processed.
        self._aged = {"outbox": outbox.c.published_at, "inbox": inbox.c.processed_at}
        self._tables = {"outbox": outbox, "inbox": inbox}
        for name, kept in self._retention.items():
            metrics.delivery_retention.labels(name).set(kept.total_seconds())

    def _boundary(self, name: str, cutoff: datetime) -> Select[Any]:
        """The age of the batch_size-th oldest row due, if that many are due."""
        aged = self._aged[name]
        return select(aged).where(aged < cutoff).order_by(aged).offset(self.batch_size - 1).limit(1)

    def _batch(self, name: str, cutoff: datetime, boundary: datetime | None) -> Delete:
        """The delete of the rows due up to `boundary`, or of all due when fewer are left."""
        aged = self._aged[name]
        # A batch is one range of the age column's index, bounded by a plain value: both
        # databases delete it by an index range scan, whatever their statistics (PostgreSQL
        # planned `key IN (SELECT ... LIMIT n)` as a hash join over the whole table at 50,000
        # rows, and SQLite bounds its scan by the cutoff when the boundary is a subquery).
        # Rows sharing the boundary's time go too: the relay marks a batch of its own with
        # one time, so a batch may grow by that much.
        # NULL is never older than anything: an unshipped outbox row never matches.
        due = aged < cutoff if boundary is None else aged <= boundary
        return delete(self._tables[name]).where(due)

    def purge_table(self, name: str) -> int:
        """Delete one batch of `name`'s expired rows in one transaction; return how many."""
        cutoff = self.clock() - self._retention[name]
        with self.engine.begin() as conn:
            # The boundary is older than the cutoff, and rows only ever get newer times (the
            # relay and the inbox stamp them now): no row can join the range before the delete.
            boundary: datetime | None = conn.execute(self._boundary(name, cutoff)).scalar()
            purged = conn.execute(self._batch(name, cutoff, boundary)).rowcount
        if purged:
            self.metrics.delivery_rows_purged.labels(name).inc(purged)
        return purged

    def purge_once(self) -> Purged:
        """Purge one batch from each table; once caught up, report their sizes and oldest rows."""
        purged = Purged(self.purge_table("outbox"), self.purge_table("inbox"))
        if not self._full(purged):
            # Counting scans the table: once per catch-up, not once per batch of a backlog.
            self.measure()
        return purged

    def measure(self) -> None:
        """Set the gauges: rows in each table, and the age of its oldest purgeable row."""
        now = self.clock()
        with self.engine.connect() as conn:
            for name, table in self._tables.items():
                aged = self._aged[name]
                rows, oldest = conn.execute(
                    select(func.count(), func.min(aged)).select_from(table)
                ).one()
                self.metrics.delivery_table_rows.labels(name).set(rows)
                age = (now - oldest).total_seconds() if oldest is not None else 0.0
                self.metrics.delivery_oldest_row_age.labels(name).set(max(0.0, age))

    def run(self, stop: threading.Event, interval: float) -> None:
        """Purge every `interval` seconds until `stop` is set; a backlog goes batch after batch."""
        Periodic(
            "delivery retention",
            self.purge_once,
            interval,
            jitter=0.1,
            # A full batch means more are due: the next one at once, each still its own
            # transaction, so other writers get the lock between batches.
            again=self._full,
        )(stop)

    def _full(self, purged: object) -> bool:
        return isinstance(purged, Purged) and max(purged) >= self.batch_size
