"""A large instance's write claim moves only for the writer holding its exact time, in both SQLs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.ingest_support import instance_row
from sqlalchemy import insert
from sqlalchemy.orm import Session

from sonobridge.common.db import create_db_engine, migrate
from sonobridge.ingest import adapters
from sonobridge.ingest.adapters.orm import instances
from sonobridge.ingest.adapters.repository import SqlInstances

MIGRATIONS = Path(adapters.__file__).parents[1] / "migrations"
# Microseconds on purpose: the compare-and-set matches the stored time exactly.
TAKEN = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)


def test_only_the_holder_of_a_claims_time_renews_stores_or_releases_it(database_url: str) -> None:
    migrate(database_url, MIGRATIONS)
    engine = create_db_engine(database_url)
    renewed, late = TAKEN + timedelta(seconds=5, microseconds=7), TAKEN + timedelta(seconds=9)
    try:
        with Session(engine) as session, session.begin():
            pending = instance_row(1, "9.1", ("east", "north"), claimed_at=TAKEN)
            session.execute(insert(instances), [pending | {"status": "pending"}])
        with Session(engine) as session, session.begin():
            claims = SqlInstances(session)
            assert claims.renew_claim("1.2.1", TAKEN, renewed)
            # A writer that still holds the old time (frozen, then taken over) matches nothing.
            assert not claims.renew_claim("1.2.1", TAKEN, late)
            assert not claims.mark_stored("1.2.1", late, TAKEN)
            assert not claims.release("1.2.1", TAKEN)
        with Session(engine) as session, session.begin():
            claims = SqlInstances(session)
            assert claims.mark_stored("1.2.1", late, renewed)
            # A stored instance is no claim: neither a renewal nor a release touches it.
            assert not claims.renew_claim("1.2.1", renewed, late)
            assert not claims.release("1.2.1")
            stored = claims.get("1.2.1")
            assert stored is not None and stored.status == "stored" and stored.stored_at == late
    finally:
        engine.dispose()
