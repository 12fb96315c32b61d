"""Alembic migrations of the inference service."""
