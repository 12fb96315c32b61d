"""Revisions 0002 and 0003 move maintenance's audit rows and request keys to common tables."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

import sonobridge.maintenance
from sonobridge.common.db import create_db_engine, migrate
from sonobridge.common.idempotency import RequestKey, StoredAnswer, replay
from sonobridge.common.sql_records import SqlIdempotencyKeys
from sonobridge.maintenance.adapters import orm
from sonobridge.maintenance.adapters.records import SqlAuditLog

AT = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
SCRIPTS = Path(sonobridge.maintenance.__file__).parent / "migrations"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.infra)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'maintenance.sqlite3'}"
    return str(request.getfixturevalue("pg_database"))


def test_old_audit_rows_survive_the_move_with_their_kind_and_cursor(database_url: str) -> None:
    migrate(database_url, SCRIPTS, "0001")
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as conn:
            for row_id, action, target, detail in (
                (4, "ticket.open", "T-1", "probe cracked"),
                (9, "device.retire", "S1", ""),
                (11, "export.run", "fleet", ""),
            ):
                conn.execute(
                    text(
                        "INSERT INTO audit_log (id, at, actor, action, target, detail)"
                        " VALUES (:id, :at, 'eng-wang', :action, :target, :detail)"
                    ),
                    {"id": row_id, "at": AT, "action": action, "target": target, "detail": detail},
                )
        migrate(database_url, SCRIPTS)
        with Session(engine) as session, session.begin():
            log = SqlAuditLog(session)
            moved = log.page(target="", after=0, limit=10)
            assert [
                (r.id, r.at, r.actor, r.action, r.resource_type, r.resource_id, r.detail)
                for r in moved
            ] == [
                (4, AT, "eng-wang", "ticket.open", "ticket", "T-1", "probe cracked"),
                (9, AT, "eng-wang", "device.retire", "device", "S1", ""),
                (11, AT, "eng-wang", "export.run", "", "fleet", ""),
            ]
            assert [r.id for r in log.page(target="S1", after=0, limit=10)] == [9]
            log.write(at=AT, actor="admin", action="device.register", target="S2")
        with Session(engine) as session:
            # New records continue after the moved ids, so old cursors stay valid.
            assert [r.id for r in SqlAuditLog(session).page(target="", after=11, limit=10)] == [12]
    finally:
        engine.dispose()


def test_keys_taken_before_0003_move_and_still_replay_their_ticket(database_url: str) -> None:
    migrate(database_url, SCRIPTS, "0002")
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO idempotency_keys (scope, key, ticket_id, created_at)"
                    " VALUES ('nurse-1', 'tap-1', 'T-7', :at)"
                ),
                {"at": AT},
            )
        migrate(database_url, SCRIPTS)
        with Session(engine) as session, session.begin():
            keys = SqlIdempotencyKeys(session, orm.idempotency_keys)
            stored = keys.find("nurse-1", "tap-1")
            assert stored == StoredAnswer("", 201, {"ticket_id": "T-7"})
            # Never fingerprinted: a retry of any request gets its ticket back, as before.
            assert replay(stored, RequestKey("tap-1", "any")).body == {"ticket_id": "T-7"}
            assert keys.find("nurse-2", "tap-1") is None
    finally:
        engine.dispose()
