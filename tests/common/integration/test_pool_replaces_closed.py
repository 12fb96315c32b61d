"""A pooled PostgreSQL connection the server closed is replaced at checkout, without pre-ping."""

from __future__ import annotations

import time

import pytest
from descriptors import descriptors_past
from sqlalchemy import create_engine, text

from sonobridge.common.db import create_db_engine

pytestmark = pytest.mark.infra


def test_a_connection_the_server_ended_is_replaced_before_a_request_uses_it(
    pg_database: str,
) -> None:
    engine = create_db_engine(pg_database, pool_size=1)
    admin = create_engine(pg_database, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            ended = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        # As a server restart does to every idle connection: the backend exits, the socket stays.
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": ended}).scalar()
            deadline = time.monotonic() + 10
            query = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p")
            while conn.execute(query, {"p": ended}).scalar_one() and time.monotonic() < deadline:
                time.sleep(0.05)
        with engine.connect() as conn:
            serving = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert serving != ended
    finally:
        engine.dispose()
        admin.dispose()


def test_a_connection_numbered_past_1024_is_checked_out(pg_database: str) -> None:
    # A long-running service (or this test run) holds many descriptors; select() refused any
    # numbered 1024 or more, so every checkout of such a connection failed.
    engine = create_db_engine(pg_database, pool_size=1)
    try:
        with descriptors_past(1100):
            with engine.connect() as conn:
                fd = conn.connection.dbapi_connection.fileno()  # type: ignore[union-attr]
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 1")).scalar_one() == 1
        assert fd > 1024
    finally:
        engine.dispose()
