"""Ingest's use cases, one module per family; `IngestDeps` is what they all take."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sonobridge.common.access import AccessPolicy
from sonobridge.common.objects.ports import ObjectStore
from sonobridge.ingest.domain.uploads import LOCK_LEASE
from sonobridge.ingest.metrics import IngestMetrics
from sonobridge.ingest.ports import DicomCodec, GroupedUnitOfWork, Spool, UnitOfWork, Work

Clock = Callable[[], datetime]
_T = TypeVar("_T")


@dataclass
class IngestDeps:
    """Everything the use cases need, built once by bootstrap (or by a test, with fakes)."""

    unit: UnitOfWork
    store: ObjectStore
    spool: Spool
    codec: DicomCodec
    metrics: IngestMetrics
    clock: Clock
    max_instance_bytes: int
    upload_expiry: timedelta
    access: AccessPolicy = field(default_factory=AccessPolicy)
    # A PATCH body commits what it has received every this many bytes or seconds, so a cut
    # connection loses at most one such piece.
    upload_commit_bytes: int = 8 * 1024 * 1024
    upload_commit_seconds: float = 5.0
    # An append lock not renewed for this long is taken over (its holder died or froze).
    upload_lock_lease: timedelta = LOCK_LEASE
    # On the single node concurrent requests share SQLite transactions; elsewhere each has its own.
    grouped: GroupedUnitOfWork | None = None

    def together(self, step: Callable[[Work], _T]) -> _T:
        """Run `step` in a transaction, shared with concurrent requests where that is cheaper."""
        if self.grouped is not None:
            return self.grouped(step)
        with self.unit() as work:
            return step(work)
