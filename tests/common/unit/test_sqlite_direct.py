"""Statements run on SQLite's DBAPI connection: the same rows, values and errors as SQLAlchemy's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Float,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from sonobridge.common.db import UtcDateTime, create_db_engine, session_factory
from sonobridge.common.sqlite_direct import Direct

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("at", UtcDateTime, nullable=False),
    Column("done", Boolean, nullable=False),
    Column("weight", Float, nullable=True),
    Column("blob", LargeBinary, nullable=True),
    Column("note", String(16), nullable=False, default="none"),
)
AT = datetime(2026, 12, 1, 13, 0, tzinfo=timezone(timedelta(hours=2)))
ROW = {"id": "a", "at": AT, "done": True, "weight": None, "blob": b"\x00\x01", "note": "n"}
_THING = select(things, literal(7).label("seven")).where(things.c.id == bindparam("id"))


@pytest.fixture
def sessions(tmp_path: Path) -> Any:
    engine = create_db_engine(f"sqlite:///{tmp_path}/direct.db")
    metadata.create_all(engine)
    yield session_factory(engine)
    engine.dispose()


def _seen(session: Session) -> list[str]:
    """Record the statements SQLAlchemy's cursor events see on the session's engine."""
    statements: list[str] = []
    event.listen(session.get_bind(), "before_cursor_execute", lambda *a: statements.append(a[2]))
    return statements


def test_a_row_inserted_directly_reads_back_as_sqlalchemy_reads_it(sessions: Any) -> None:
    with sessions.begin() as session:
        assert Direct(insert(things)).run(session, ROW, keys=True) == []
    with sessions() as session:
        direct = Direct(_THING).run(session, {"id": "a"})
        usual = [dict(r._mapping) for r in session.execute(_THING, {"id": "a"})]
    assert direct == usual == [{**ROW, "at": AT.astimezone(UTC), "seven": 7}]
    assert direct[0]["at"].tzinfo is UTC and direct[0]["done"] is True


def test_a_naive_time_is_refused_as_sqlalchemy_refuses_it(sessions: Any) -> None:
    naive = {**ROW, "at": datetime(2026, 12, 1)}
    with sessions.begin() as session:
        with pytest.raises(StatementError, match="naive datetime") as direct:
            Direct(insert(things)).run(session, naive, keys=True)
        with pytest.raises(StatementError, match="naive datetime") as usual:
            session.execute(insert(things), naive)
    assert type(direct.value) is type(usual.value)
    assert isinstance(direct.value.orig, ValueError)


def test_a_unique_key_clash_is_sqlalchemys_integrity_error(sessions: Any) -> None:
    with sessions.begin() as session:
        Direct(insert(things)).run(session, ROW, keys=True)
    with sessions.begin() as session, pytest.raises(IntegrityError) as raised:
        Direct(insert(things)).run(session, ROW, keys=True)
    assert "UNIQUE" in str(raised.value.orig)


def test_returning_tells_a_skipped_conflict_from_an_insert(sessions: Any) -> None:
    claim = Direct(
        sqlite_insert(things)
        .on_conflict_do_nothing(index_elements=[things.c.id])
        .returning(things.c.id)
    )
    with sessions.begin() as session:
        assert claim.run(session, ROW, keys=True) == [{"id": "a"}]
        assert claim.run(session, {**ROW, "note": "other"}, keys=True) == []
        assert session.execute(select(things.c.note)).scalars().all() == ["n"]


def test_a_rolled_back_transaction_keeps_nothing_it_wrote_directly(sessions: Any) -> None:
    with sessions() as session:
        with session.begin():
            Direct(text("BEGIN IMMEDIATE")).run(session, {})
            Direct(insert(things)).run(session, ROW, keys=True)
            session.rollback()
        assert session.execute(select(things)).all() == []


def test_a_column_sqlalchemy_fills_in_sends_the_insert_the_usual_way(sessions: Any) -> None:
    partial = {k: v for k, v in ROW.items() if k != "note"}
    with sessions.begin() as session:
        seen = _seen(session)
        Direct(insert(things)).run(session, partial, keys=True)
        assert session.execute(select(things.c.note)).scalar_one() == "none"
    assert seen[0].startswith("INSERT INTO things")


def test_statements_go_the_usual_way_while_events_watch_them(sessions: Any) -> None:
    with sessions.begin() as session:
        Direct(insert(things)).run(session, ROW, keys=True)
    with sessions() as session:
        seen = _seen(session)
        assert Direct(_THING).run(session, {"id": "a"})[0]["seven"] == 7
    # The listener saw the statement: counters and tracers miss nothing.
    assert len(seen) == 1 and seen[0].startswith("SELECT")


def test_a_statement_with_nothing_to_bind_runs(sessions: Any) -> None:
    with sessions() as session:
        assert Direct(select(literal(1).label("one"))).run(session, {}) == [{"one": 1}]
