"""Database engines for PostgreSQL and SQLite, sessions, and per-service Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, Dialect, Engine, MetaData, create_engine, event, pool, text
from sqlalchemy.orm import sessionmaker
from sqlalchemy.types import TypeDecorator

from sonobridge.common.sqlite_writers import gated_connection_class


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
            cursor.close()

        return engine
    return create_engine(url, echo=echo, pool_size=pool_size, pool_pre_ping=True)


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
