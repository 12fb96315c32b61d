"""Alembic migrations of the maintenance database."""
