"""Each service's move to the common audit table keeps its rows and reads back as AuditRecords."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.orm import Session

from sonobridge.common.db import create_db_engine
from sonobridge.common.sql_records import SqlAuditLog
from sonobridge.ingest.adapters import orm as ingest_orm
from sonobridge.ingest.bootstrap import MIGRATIONS as INGEST_MIGRATIONS

AT = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def _config(scripts: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.infra)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.sqlite3'}"
    return str(request.getfixturevalue("pg_database"))


def test_ingest_keeps_its_audit_rows_and_reverts(database_url: str) -> None:
    config = _config(INGEST_MIGRATIONS, database_url)
    command.upgrade(config, "0003")
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO audit_log (at, actor, roles, action, resource_type, resource_id,"
                    " institution_id, channel, outcome, detail) VALUES (:at, 'app-1',"
                    " 'operator', 'store', 'instance', '1.2.3', 'township-east', 'dimse', 'ok',"
                    " NULL)"
                ),
                {"at": AT},
            )
        command.upgrade(config, "head")
        with Session(engine) as session:
            (record,) = SqlAuditLog(session, ingest_orm.audit_log).trail(resource_id="1.2.3")
        assert (record.actor, record.roles, record.action, record.channel) == (
            "app-1",
            frozenset({"operator"}),
            "store",
            "dimse",
        )
        assert (record.resource_type, record.institution_id, record.at) == (
            "instance",
            "township-east",
            AT,
        )
        command.downgrade(config, "0003")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() == 1
    finally:
        engine.dispose()
