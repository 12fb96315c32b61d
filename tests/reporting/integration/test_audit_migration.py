"""Revision 0003 moves reporting's audit rows to the common audit table, ids and all."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

import sonobridge.reporting
from sonobridge.common.audit import AuditRecord
from sonobridge.common.db import create_db_engine, migrate
from sonobridge.reporting.adapters.repository import ReportingRepository
from sonobridge.reporting.entrypoints.views import audit_view

AT = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
SCRIPTS = Path(sonobridge.reporting.__file__).parent / "migrations"
OLD_ROWS = (
    (2, "rad-1", "radiologist,reader", "view_read", "R1", None, ""),
    (5, "rad-1", "radiologist", "signed", "R1", "P1", "v1"),
    (6, "rad-2", "radiologist", "download_pdf", None, "P1", "pdf"),
    (8, "admin-1", "admin", "roster_set", None, None, "general: 3 shifts"),
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.infra)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reporting.sqlite3'}"
    return str(request.getfixturevalue("pg_database"))


def test_old_audit_rows_keep_their_answers_and_cursor(database_url: str) -> None:
    migrate(database_url, SCRIPTS, "0002")
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as conn:
            for row in OLD_ROWS:
                conn.execute(
                    text(
                        'INSERT INTO audit_log (id, at, "user", roles, action, read_id,'
                        " report_id, detail) VALUES (:id, :at, :user, :roles, :action,"
                        " :read_id, :report_id, :detail)"
                    ),
                    dict(
                        zip(
                            ("id", "user", "roles", "action", "read_id", "report_id", "detail"),
                            row,
                            strict=True,
                        ),
                        at=AT,
                    ),
                )
        migrate(database_url, SCRIPTS)
        with Session(engine) as session, session.begin():
            repo = ReportingRepository(session)
            by_read = repo.audit_trail(read_id="R1", report_id=None)
            assert [audit_view(r) for r in by_read] == [
                {
                    "at": AT.isoformat(),
                    "user": "rad-1",
                    "roles": "radiologist,reader",
                    "action": "view_read",
                    "read_id": "R1",
                    "report_id": None,
                    "detail": "",
                },
                {
                    "at": AT.isoformat(),
                    "user": "rad-1",
                    "roles": "radiologist",
                    "action": "signed",
                    "read_id": "R1",
                    "report_id": "P1",
                    "detail": "v1",
                },
            ]
            by_report = repo.audit_trail(read_id=None, report_id="P1")
            assert [(r.id, r.action) for r in by_report] == [(5, "signed"), (6, "download_pdf")]
            assert audit_view(by_report[1])["read_id"] is None
            assert audit_view(by_report[1])["report_id"] == "P1"
            both = repo.audit_trail(read_id="R1", report_id="P1")
            assert [r.id for r in both] == [5]
            repo.audit(AuditRecord(at=AT, actor="admin-1", action="roster_set"))
        with engine.connect() as conn:
            ids = conn.execute(text("SELECT id FROM audit_log ORDER BY id")).scalars().all()
        # New records continue after the moved ids.
        assert ids == [2, 5, 6, 8, 9]
    finally:
        engine.dispose()
