"""Ingest's use cases, one module per family; `IngestDeps` is what they all take."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sonobridge.common.access import AccessPolicy
from sonobridge.common.objects.ports import ObjectStore
from sonobridge.ingest.metrics import IngestMetrics
from sonobridge.ingest.ports import DicomCodec, Spool, UnitOfWork

Clock = Callable[[], datetime]


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
