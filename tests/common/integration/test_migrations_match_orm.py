"""Each service's migrations build exactly the tables its ORM declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from sonobridge.common.db import create_db_engine, migrate

# Ingest keeps its own version table; the others use Alembic's default.
SERVICES = {
    "ingest": "alembic_version_ingest",
    "inference": "alembic_version",
    "reporting": "alembic_version",
    "maintenance": "alembic_version",
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.infra)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.sqlite3'}"
    return str(request.getfixturevalue("pg_database"))


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_migrated_schema_matches_the_orm(service: str, database_url: str) -> None:
    metadata = importlib.import_module(f"sonobridge.{service}.adapters.orm").metadata
    scripts = Path(importlib.import_module(f"sonobridge.{service}").__file__ or "").parent
    migrate(database_url, scripts / "migrations")
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": SERVICES[service], "compare_type": True}
            )
            drift = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert drift == []
