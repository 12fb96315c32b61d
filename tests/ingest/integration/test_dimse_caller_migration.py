"""Migration 0003 adds the DIMSE caller registry on SQLite and PostgreSQL and reverts cleanly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from sonobridge.common.db import create_db_engine, session_factory
from sonobridge.ingest.adapters.callers import SqlCallers
from sonobridge.ingest.adapters.orm import metadata
from sonobridge.ingest.bootstrap import MIGRATIONS
from sonobridge.ingest.domain.callers import DimseCaller


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.infra)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ingest.sqlite3'}"
    return str(request.getfixturevalue("pg_database"))


def test_0003_adds_the_registry_matching_the_tables_and_reverts(database_url: str) -> None:
    config = _config(database_url)
    command.upgrade(config, "0002")
    engine = create_db_engine(database_url)
    try:
        assert "dimse_callers" not in inspect(engine).get_table_names()
        command.upgrade(config, "0003")
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": "alembic_version_ingest"}
            )
            assert context.get_current_revision() == "0003"
            drift = [d for d in compare_metadata(context, metadata) if "dimse_callers" in repr(d)]
        assert drift == []
        caller = DimseCaller("EAST_US1", "township-east", "cart")
        now = datetime.now(UTC)
        with session_factory(engine).begin() as session:
            assert SqlCallers(session).put(caller, by="county-admin", at=now)
            assert not SqlCallers(session).put(caller, by="county-admin", at=now)
        with session_factory(engine).begin() as session:
            assert SqlCallers(session).get("EAST_US1") == caller
            assert SqlCallers(session).all() == [caller]
        command.downgrade(config, "0002")
        assert "dimse_callers" not in inspect(engine).get_table_names()
        command.upgrade(config, "head")
        assert "dimse_callers" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
