"""Alembic environment of the reporting service: its own tables, migrated by the common runner."""

from __future__ import annotations

from sonobridge.common.db import run_migrations
from sonobridge.reporting.adapters.orm import metadata

run_migrations(metadata)
