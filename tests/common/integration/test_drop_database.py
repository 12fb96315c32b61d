"""A database is dropped even while a session the app role may not end is still in it."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from sonobridge.common.db import drop_database

pytestmark = pytest.mark.infra


def test_the_drop_waits_for_a_session_it_may_not_terminate(pg_database: str) -> None:
    # An autovacuum worker is such a session: DROP ... WITH (FORCE) by a role that is not
    # superuser is refused while one is in the database (a CI teardown failed so). A superuser's
    # session stands in for it here, as the local server trusts its own host.
    url = make_url(pg_database)
    name = url.database
    assert name
    # No pool, so closing the session ends it on the server.
    superuser = create_engine(url.set(username="postgres", password=None), poolclass=NullPool)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        held = superuser.connect()
        held.execute(text("SELECT 1"))
        with admin.connect() as conn:
            with pytest.raises(Exception, match="superuser"):
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            leaves = threading.Timer(1.0, held.close)
            leaves.start()
            drop_database(conn, name)
            leaves.join()
            gone = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            assert gone.first() is None
    finally:
        superuser.dispose()
        admin.dispose()
