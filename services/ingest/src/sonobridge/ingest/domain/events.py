"""What ingest announces: an instance was stored, an exam's manifest is fully stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sonobridge.ingest.domain.model import Channel
from sonobridge.ingest.domain.records import Exam, Instance


@dataclass(frozen=True)
class InstanceStored:
    """An instance was indexed (or arrived again as a duplicate)."""

    instance: Instance
    exam: Exam | None
    channel: Channel
    duplicate: bool
    stored_at: datetime


@dataclass(frozen=True)
class ExamCompleted:
    """Every instance in an exam's manifest is stored with the listed hash."""

    exam: Exam
    instances: Sequence[Instance]


Event = InstanceStored | ExamCompleted
