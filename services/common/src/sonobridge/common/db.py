"""Database engines for PostgreSQL and SQLite, sessions, and per-service Alembic migrations."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, Dialect, Engine, MetaData, create_engine, event, pool, text
from sqlalchemy.orm import sessionmaker
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp column that stores UTC and always returns an aware UTC datetime."""

    # The column stays DateTime(timezone=True), so existing migrations and the schema are unchanged.
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse a naive datetime: its zone is a guess, and a wrong guess shifts every deadline."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return the stored instant in UTC; SQLite keeps no zone, and what it holds is UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def create_db_engine(url: str, *, pool_size: int = 5, echo: bool = False) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout for several writers."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connect_args: dict[str, Any] = {"timeout": 30}
        if path and path != ":memory:":
            connect_args["factory"] = _gated_factory(path)
        engine = create_engine(url, echo=echo, connect_args=connect_args)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        return engine
    return create_engine(url, echo=echo, pool_size=pool_size, pool_pre_ping=True)


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_GATES: dict[str, threading.Lock] = {}


class _GatedCursor(sqlite3.Cursor):
    """A cursor whose writes first pass its connection's write gate."""

    def execute(self, sql: str, parameters: Any = (), /) -> _GatedCursor:
        """Run `sql`, through the gate when it writes."""
        return self._through_gate(sql, lambda: sqlite3.Cursor.execute(self, sql, parameters))

    def executemany(self, sql: str, seq: Any, /) -> _GatedCursor:
        """Run `sql` for each parameter set, through the gate when it writes."""
        return self._through_gate(sql, lambda: sqlite3.Cursor.executemany(self, sql, seq))

    def _through_gate(self, sql: str, run: Callable[[], Any]) -> _GatedCursor:
        conn = self.connection
        assert isinstance(conn, _GatedConnection)
        conn.enter(sql)
        try:
            run()
            return self
        finally:
            # A statement that left no transaction open (autocommit, or one that failed before
            # its BEGIN) must not keep the gate.
            if not conn.in_transaction:
                conn.leave()


class _GatedConnection(sqlite3.Connection):
    """Queue this process's writers of one SQLite file on a lock, held from first write to end.

    SQLite admits one writer; the others poll in its busy handler with sleeps of up to 100 ms,
    so under a burst the lock sits idle while waiters sleep. Waiting here hands it over as soon
    as the holder commits. Reads never take it (WAL readers do not block). A writer that waited
    past SQLite's own busy timeout goes on to SQLite, which decides as before (another process,
    a second writer on one thread).
    """

    gate: threading.Lock
    holding = False

    def cursor(self, factory: Any = _GatedCursor) -> Any:
        """Return a gated cursor (SQLAlchemy and Connection.execute both come through here)."""
        return super().cursor(factory)

    def enter(self, sql: str) -> None:
        """Take the gate if `sql` writes and this connection does not hold it yet."""
        if not self.holding and sql.lstrip()[:7].upper().startswith(_WRITES):
            self.holding = self.gate.acquire(timeout=30)

    def leave(self) -> None:
        """Hand the gate to the next writer."""
        if self.holding:
            self.holding = False
            self.gate.release()

    def commit(self) -> None:
        """Commit, then let the next writer in (it would wait on SQLite's lock meanwhile)."""
        try:
            super().commit()
        finally:
            self.leave()

    def rollback(self) -> None:
        """Roll back, then let the next writer in."""
        try:
            super().rollback()
        finally:
            self.leave()

    def close(self) -> None:
        """Close; a transaction still open is rolled back by SQLite."""
        try:
            super().close()
        finally:
            self.leave()


def _gated_factory(path: str) -> type[_GatedConnection]:
    gate = _GATES.setdefault(str(Path(path).resolve()), threading.Lock())
    return type("GatedConnection", (_GatedConnection,), {"gate": gate})


def session_factory(engine: Engine) -> sessionmaker[Any]:
    """Return the session factory services use for one unit of work each."""
    return sessionmaker(engine, expire_on_commit=False)


def check_database(engine: Engine) -> None:
    """Raise if the database does not answer."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def migrate(url: str, script_location: Path, revision: str = "head") -> None:
    """Upgrade the service's schema with its Alembic scripts."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, revision)


def run_migrations(metadata: MetaData, *, version_table: str = "alembic_version") -> None:
    """Run a service's Alembic scripts; each service's `migrations/env.py` calls only this."""
    from alembic import context

    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set; run through sonobridge.common.db.migrate")
    if context.is_offline_mode():
        context.configure(
            url=url, target_metadata=metadata, literal_binds=True, version_table=version_table
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                version_table=version_table,
                # Batch mode lets revisions alter tables on SQLite, which has no ALTER COLUMN.
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
