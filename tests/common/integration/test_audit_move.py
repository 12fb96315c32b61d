"""move_audit_log: a service's own audit table becomes the common one, every row kept."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import MetaData, text
from sqlalchemy.orm import Session

from sonobridge.common.audit import AuditRecord
from sonobridge.common.db import create_db_engine
from sonobridge.common.ddl import move_audit_log
from sonobridge.common.sql_records import SqlAuditLog, audit_table

AT = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)

# A service-shaped legacy table (maintenance's: actor, action, target, detail).
LEGACY = """CREATE TABLE audit_log (
    id INTEGER NOT NULL PRIMARY KEY, at TIMESTAMP WITH TIME ZONE NOT NULL,
    actor VARCHAR(128) NOT NULL, action VARCHAR(64) NOT NULL, target VARCHAR(128) NOT NULL,
    detail TEXT NOT NULL)"""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.infra)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.sqlite3'}"
    return str(request.getfixturevalue("pg_database"))


def test_the_rows_move_with_their_ids_and_the_table_matches_the_common_one(
    database_url: str,
) -> None:
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as conn:
            legacy = LEGACY.replace("TIMESTAMP WITH TIME ZONE", "TIMESTAMP")
            conn.execute(text(legacy if conn.dialect.name == "sqlite" else LEGACY))
            for row_id, action, target in ((3, "ticket.open", "T-1"), (7, "device.retire", "S1")):
                conn.execute(
                    text(
                        "INSERT INTO audit_log (id, at, actor, action, target, detail)"
                        " VALUES (:id, :at, 'eng-wang', :action, :target, '')"
                    ),
                    {"id": row_id, "at": AT, "action": action, "target": target},
                )
            with Operations.context(MigrationContext.configure(conn)):
                move_audit_log(
                    "SELECT id, at, actor, '', NULL, action, '', target, NULL, 'ok', NULL, NULL,"
                    " NULLIF(detail, '') FROM audit_log"
                )
        metadata = MetaData()
        table = audit_table(metadata)
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        with Session(engine) as session, session.begin():
            log = SqlAuditLog(session, table)
            moved = log.trail()
            assert [(r.id, r.action, r.resource_id, r.at) for r in moved] == [
                (3, "ticket.open", "T-1", AT),
                (7, "device.retire", "S1", AT),
            ]
            log.append(AuditRecord(at=AT, actor="eng-wang", action="ticket.close"))
        with Session(engine) as session:
            # New ids continue after the copied ones (PostgreSQL's sequence was moved on).
            assert [r.id for r in SqlAuditLog(session, table).trail(after=7)] == [8]
    finally:
        engine.dispose()
