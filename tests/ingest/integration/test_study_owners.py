"""The ownership check's index scan finds every owner scope of a study and its bound exam."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from sonobridge.common.db import create_db_engine, migrate
from sonobridge.ingest import adapters
from sonobridge.ingest.adapters.orm import exams, instances
from sonobridge.ingest.adapters.repository import SqlInstances
from sonobridge.ingest.domain.model import Scope
from sonobridge.ingest.domain.records import Exam, Instance

MIGRATIONS = Path(adapters.__file__).parents[1] / "migrations"
AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# Scopes sorted apart on purpose: an empty consortium, one institution in two consortia.
SCOPES = [("east", ""), ("east", "north"), ("east", "south"), ("west", "north"), ("zeta", "x")]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.infra)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ingest.sqlite3'}"
    return str(request.getfixturevalue("pg_database"))


def _instance(n: int, study: str, scope: tuple[str, str]) -> dict[str, object]:
    text = {f.name: "x" for f in fields(Instance) if f.type == "str"}
    return text | {
        "sop_instance_uid": f"1.2.{n}",
        "status": "stored",
        "claimed_at": AT,
        "study_instance_uid": study,
        "exam_id": None,
        "size_bytes": 1,
        "number_of_frames": 1,
        "rows": 1,
        "columns": 1,
        "institution_id": scope[0],
        "consortium_id": scope[1],
    }


def test_every_owner_scope_and_the_bound_exam_come_back(database_url: str) -> None:
    migrate(database_url, MIGRATIONS)
    engine = create_db_engine(database_url)
    exam = Exam("e-1", "9.1", "east", "north", "nurse", "dev", "ob", "p", "open", "d", "n", AT)
    # Bound to its study before any instance of it is indexed.
    early = Exam("e-2", "9.3", "west", "north", "nurse", "dev", "ob", "p", "open", "d", "n", AT)
    rows = [_instance(n, "9.1", SCOPES[(7 * n) % len(SCOPES)]) for n in range(300)]
    rows += [_instance(1000 + n, "9.2", ("other", "c")) for n in range(3)]
    try:
        with Session(engine) as session, session.begin():
            session.execute(insert(instances), rows)
            for bound in (exam, early):
                values = {f.name: getattr(bound, f.name) for f in fields(bound)}
                session.execute(insert(exams).values(**values))
        with Session(engine) as session:
            found = SqlInstances(session)
            distinct = select(instances.c.institution_id, instances.c.consortium_id).distinct()
            expected = {
                Scope(*r)
                for r in session.execute(distinct.where(instances.c.study_instance_uid == "9.1"))
            }
            assert expected == {Scope(*s) for s in SCOPES}
            assert found.owners_and_exam_of_study("9.1") == (expected, exam)
            assert found.owners_and_exam_of_study("9.2") == ({Scope("other", "c")}, None)
            assert found.owners_and_exam_of_study("9.3") == (set(), early)
            assert found.owners_and_exam_of_study("9.4") == (set(), None)
    finally:
        engine.dispose()
