"""Revision 0006 moves ingest's exam-opening Idempotency-Keys to common's table, and back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.orm import Session

from sonobridge.common.db import create_db_engine, migrate
from sonobridge.common.idempotency import RequestKey, StoredAnswer, replay
from sonobridge.common.problems import InvalidInput
from sonobridge.common.sql_records import SqlIdempotencyKeys
from sonobridge.ingest.adapters import orm
from sonobridge.ingest.bootstrap import MIGRATIONS

AT = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
DIGEST = "a" * 64
EXAM = "00000000-0000-0000-0000-000000000007"


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


def test_keys_taken_before_0006_move_and_still_replay_their_exam(database_url: str) -> None:
    migrate(database_url, MIGRATIONS, "0005")
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO idempotency_keys (owner, key, request_sha256, exam_id, created_at)"
                    " VALUES ('sono-1', 'k-1', :digest, :exam, :at)"
                ),
                {"digest": DIGEST, "exam": EXAM, "at": AT},
            )
        migrate(database_url, MIGRATIONS)
        with Session(engine) as session, session.begin():
            keys = SqlIdempotencyKeys(session, orm.idempotency_keys)
            stored = keys.find("sono-1", "k-1")
            assert stored == StoredAnswer(DIGEST, 201, {"exam_id": EXAM})
            # The digest is create_exam's fingerprint: the same request replays its exam ...
            assert replay(stored, RequestKey("k-1", DIGEST)).body == {"exam_id": EXAM}
            # ... and another request under the key is refused.
            with pytest.raises(InvalidInput):
                replay(stored, RequestKey("k-1", "b" * 64))
            assert keys.find("sono-2", "k-1") is None
        command.downgrade(_config(database_url), "0005")
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT owner, key, request_sha256, exam_id FROM idempotency_keys")
            ).all()
        assert [tuple(r) for r in rows] == [("sono-1", "k-1", DIGEST, EXAM)]
    finally:
        engine.dispose()
