"""Database engines for PostgreSQL and SQLite, sessions, and per-service Alembic migrations."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Dialect,
    Engine,
    MetaData,
    create_engine,
    event,
    pool,
    text,
)
from sqlalchemy.exc import DisconnectionError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.sql import column, select, table
from sqlalchemy.types import TypeDecorator

from sonobridge.common.sockets import readable
from sonobridge.common.sqlite_writers import GatedConnection, gated_connection_class


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
            connect_args["factory"] = gated_connection_class(path)
        engine = create_engine(url, echo=echo, connect_args=connect_args)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # NORMAL: the commit itself does not fsync; GatedConnection.commit fsyncs the WAL
            # before returning, once for all the commits of a burst (group commit).
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Statement journals in memory: an INSERT of an instance row (its DICOM JSON runs
            # to overflow pages) inside a group's transaction journals over 64 KiB of original
            # pages, which SQLite otherwise spills to a new file in /var/tmp (open, ~17 writes,
            # unlink per instance). They only undo a failed statement within a transaction;
            # the WAL, not they, is what a crash recovers from.
            cursor.execute("PRAGMA temp_store=MEMORY")
            if isinstance(dbapi_conn, GatedConnection):
                # Checkpoints run on a thread of their own (WalCheckpoints), not in a commit.
                cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.close()

        return engine
    engine = create_engine(url, echo=echo, pool_size=pool_size)
    event.listen(engine, "checkout", _drop_if_closed)
    return engine


def _drop_if_closed(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled connection the server has closed; the pool then opens a new one."""
    # A restarted or terminating server leaves its FATAL message or EOF on an idle connection's
    # socket, and an idle connection has nothing else to read: a zero-timeout poll sees it with
    # no round trip, where pre-ping's SELECT 1 cost one per unit of work. A connection that dies
    # mid-statement still invalidates the whole pool (SQLAlchemy's disconnect handling).
    if dbapi_conn.closed:
        raise DisconnectionError("this pooled connection is closed")
    if readable(dbapi_conn.fileno()):
        raise DisconnectionError("the server closed this pooled connection")


def session_factory(engine: Engine) -> sessionmaker[Any]:
    """Return the session factory services use for one unit of work each."""
    return sessionmaker(engine, expire_on_commit=False)


def check_database(engine: Engine) -> None:
    """Raise if the database does not answer."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


# How long a drop waits for an autovacuum worker to leave the database (see drop_database).
_DROP_PATIENCE_S = 15.0


def drop_database(conn: Connection, name: str) -> None:
    """Drop PostgreSQL database `name` if it exists, ending sessions left open in it (pools)."""
    # FORCE terminates the database's other sessions so the drop cannot hang, but a role that
    # is not superuser may not terminate an autovacuum worker (a process of no role), and then
    # the whole statement is refused. The worker finishes, or yields to the drop, in moments.
    deadline = time.monotonic() + _DROP_PATIENCE_S
    while True:
        try:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except ProgrammingError as refused:
            if getattr(refused.orig, "sqlstate", None) != "42501" or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*[\"'](\w+)[\"']", re.M)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.+)$", re.M)
_VERSION_TABLE = re.compile(r"version_table\s*=\s*[\"'](\w+)[\"']")


def script_heads(script_location: Path) -> set[str]:
    """Return the head revisions of a migrations folder, read from its scripts' source."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (script_location / "versions").glob("*.py"):
        source = script.read_text(encoding="utf-8")
        found = _REVISION.search(source)
        if found:
            revisions.add(found.group(1))
        down = _DOWN_REVISION.search(source)
        if down:
            parents.update(re.findall(r"[\"'](\w+)[\"']", down.group(1)))
    return revisions - parents


def schema_at_head(engine: Engine, script_location: Path) -> bool:
    """Return True when the database's version row already names every head script."""
    env = script_location / "env.py"
    named = _VERSION_TABLE.search(env.read_text(encoding="utf-8")) if env.exists() else None
    heads = script_heads(script_location)
    if not heads:
        return False
    versions = table(named[1] if named else "alembic_version", column("version_num"))
    try:
        with engine.connect() as conn:
            stored = set(conn.execute(select(versions.c.version_num)).scalars())
    except SQLAlchemyError:
        return False  # no version table yet: a new database
    return stored == heads


def migrate(
    url: str, script_location: Path, revision: str = "head", *, engine: Engine | None = None
) -> None:
    """Upgrade the service's schema with its Alembic scripts (nothing to load when at head)."""
    # Alembic and its DDL dialects cost ~13 MB and a second of start-up: a restart of a
    # service whose schema is current skips them. Any doubt (no row, another head) migrates.
    if revision == "head" and engine is not None and schema_at_head(engine, script_location):
        return
    from alembic import command
    from alembic.config import Config

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
