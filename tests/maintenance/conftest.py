"""Fixtures for maintenance tests: an injected clock and handler dependencies on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from maintenance.maintenance_support import FakeClock, maintenance_config

from sonobridge.common.db import create_db_engine, session_factory
from sonobridge.common.delivery import Outbox
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.maintenance import handlers
from sonobridge.maintenance.adapters import orm
from sonobridge.maintenance.bootstrap import migrate_database
from sonobridge.maintenance.metrics import MaintenanceMetrics
from sonobridge.maintenance.settings import Settings


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting at 2026-03-01 08:00 UTC."""
    return FakeClock()


@pytest.fixture
def deps(tmp_path: Path, clock: FakeClock) -> Iterator[handlers.Dependencies]:
    """Handler dependencies on a migrated SQLite file and a local-directory object store."""
    settings = Settings(data_dir=tmp_path, maintenance=maintenance_config())
    engine = create_db_engine(f"sqlite:///{tmp_path / 'maintenance.sqlite3'}")
    migrate_database(settings, engine)
    metrics = MaintenanceMetrics(ServiceMetrics("maintenance"))
    yield handlers.Dependencies(
        sessions=session_factory(engine),
        outbox=Outbox(orm.outbox),
        config=settings.maintenance,
        clock=clock,
        metrics=metrics,
        store=LocalDirObjectStore(tmp_path / "objects"),
    )
    engine.dispose()
