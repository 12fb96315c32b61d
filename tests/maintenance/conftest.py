"""Fixtures for maintenance tests: an injected clock and handler dependencies on SQLite."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from maintenance.maintenance_support import FakeClock, maintenance_config

from sonobridge.common.db import create_db_engine, session_factory
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.maintenance.__main__ import SPEC
from sonobridge.maintenance.adapters.unit_of_work import SqlUnitsOfWork
from sonobridge.maintenance.handlers import Dependencies
from sonobridge.maintenance.metrics import MaintenanceMetrics
from sonobridge.maintenance.settings import Settings


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting at 2026-03-01 08:00 UTC."""
    return FakeClock()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session; tests copy it instead of migrating again."""
    path = tmp_path_factory.mktemp("template") / "maintenance.sqlite3"
    engine = create_db_engine(f"sqlite:///{path}")
    SPEC.migrate_database(Settings(data_dir=path.parent), engine)
    engine.dispose()
    return path


@pytest.fixture
def deps(tmp_path: Path, clock: FakeClock, migrated_template: Path) -> Iterator[Dependencies]:
    """Handler dependencies on a migrated SQLite file and a local-directory object store."""
    settings = Settings(data_dir=tmp_path, maintenance=maintenance_config())
    db = tmp_path / "maintenance.sqlite3"
    shutil.copyfile(migrated_template, db)
    engine = create_db_engine(f"sqlite:///{db}")
    metrics = MaintenanceMetrics(ServiceMetrics("maintenance"))
    yield Dependencies(
        units=SqlUnitsOfWork(session_factory(engine)),
        config=settings.maintenance,
        clock=clock,
        metrics=metrics,
        store=LocalDirObjectStore(tmp_path / "objects"),
    )
    engine.dispose()
