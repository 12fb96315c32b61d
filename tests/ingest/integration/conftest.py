"""Fixtures of ingest's integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.infra)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty ingest database, on SQLite and on the local PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ingest.sqlite3'}"
    return str(request.getfixturevalue("pg_database"))
