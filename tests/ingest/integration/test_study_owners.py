"""The ownership check's index scan finds every owner scope of a study and its bound exam."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

from ingest.ingest_support import instance_row
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from sonobridge.common.db import create_db_engine, migrate
from sonobridge.ingest import adapters
from sonobridge.ingest.adapters.orm import exams, instances
from sonobridge.ingest.adapters.repository import SqlInstances
from sonobridge.ingest.domain.model import Scope
from sonobridge.ingest.domain.records import Exam

MIGRATIONS = Path(adapters.__file__).parents[1] / "migrations"
AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# Scopes sorted apart on purpose: an empty consortium, one institution in two consortia.
SCOPES = [("east", ""), ("east", "north"), ("east", "south"), ("west", "north"), ("zeta", "x")]


def test_every_owner_scope_and_the_bound_exam_come_back(database_url: str) -> None:
    migrate(database_url, MIGRATIONS)
    engine = create_db_engine(database_url)
    exam = Exam("e-1", "9.1", "east", "north", "nurse", "dev", "ob", "p", "open", "d", "n", AT)
    # Bound to its study before any instance of it is indexed.
    early = Exam("e-2", "9.3", "west", "north", "nurse", "dev", "ob", "p", "open", "d", "n", AT)
    rows = [
        instance_row(n, "9.1", SCOPES[(7 * n) % len(SCOPES)], claimed_at=AT) for n in range(300)
    ]
    rows += [instance_row(1000 + n, "9.2", ("other", "c"), claimed_at=AT) for n in range(3)]
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
