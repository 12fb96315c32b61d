"""The UTC column type: aware datetimes in, aware UTC datetimes out, naive ones refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, create_engine, insert, select
from sqlalchemy.exc import StatementError

from sonobridge.common.db import UtcDateTime

metadata = MetaData()
stamps = Table(
    "stamps",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UtcDateTime, nullable=True),
)


@pytest.fixture
def engine() -> Engine:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    return engine


def test_sqlite_gives_back_an_aware_utc_instant(engine: Engine) -> None:
    beijing = timezone(timedelta(hours=8))
    written = datetime(2026, 11, 30, 10, 0, tzinfo=beijing)
    with engine.begin() as conn:
        conn.execute(insert(stamps).values(id=1, at=written))
        read = conn.execute(select(stamps.c.at)).scalar_one()
    assert read.tzinfo is not None and read.utcoffset() == timedelta(0)
    assert read == written
    assert read == datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def test_a_naive_datetime_is_refused(engine: Engine) -> None:
    with pytest.raises(StatementError, match="naive"), engine.begin() as conn:
        conn.execute(insert(stamps).values(id=1, at=datetime(2026, 11, 30, 10, 0)))


def test_null_stays_null(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(stamps).values(id=1, at=None))
        assert conn.execute(select(stamps.c.at)).scalar_one() is None


def test_comparisons_bind_aware_values(engine: Engine) -> None:
    at = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(insert(stamps).values(id=1, at=at))
        due = conn.execute(select(stamps.c.id).where(stamps.c.at <= at + timedelta(seconds=1)))
        assert due.scalars().all() == [1]
