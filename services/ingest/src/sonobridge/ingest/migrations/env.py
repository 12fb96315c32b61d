"""Alembic environment of the ingest service: its own tables, migrated by the common runner."""

from __future__ import annotations

from sonobridge.common.db import run_migrations
from sonobridge.ingest.adapters.orm import metadata

# Own version table: services may share one database server (never tables).
run_migrations(metadata, version_table="alembic_version_ingest")
