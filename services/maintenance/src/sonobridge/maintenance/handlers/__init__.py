"""Maintenance use cases, one module per family; transports import the family they need."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sonobridge.common.access import AccessPolicy
from sonobridge.common.objects.ports import ObjectStore
from sonobridge.maintenance.metrics import MaintenanceMetrics
from sonobridge.maintenance.ports import UnitsOfWork
from sonobridge.maintenance.settings import MaintenanceSettings

Clock = Callable[[], datetime]
"""Returns the current time as an aware UTC datetime."""

SERVICE = "maintenance"


@dataclass
class Dependencies:
    """What the handlers need, built once by bootstrap (tests pass fakes)."""

    units: UnitsOfWork
    config: MaintenanceSettings
    clock: Clock
    metrics: MaintenanceMetrics
    store: ObjectStore | None = None
    access: AccessPolicy = field(default_factory=AccessPolicy)

    def now(self) -> datetime:
        """Return the clock's time in UTC; a naive clock is a wiring bug."""
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("clock must return aware datetimes")
        return now.astimezone(UTC)

    def day(self, at: datetime) -> date:
        """Return the local calendar day that usage at `at` counts towards."""
        return (at + timedelta(hours=self.config.utilisation.utc_offset_hours)).date()
