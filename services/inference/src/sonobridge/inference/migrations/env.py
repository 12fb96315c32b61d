"""Alembic environment: migrate the inference tables on the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from sonobridge.inference.adapters.orm import metadata

config = context.config


def run() -> None:
    """Run migrations online against sqlalchemy.url."""
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set; run through sonobridge.common.db.migrate")
    connectable = create_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


run()
