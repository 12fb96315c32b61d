"""Experts' quality labels of a read's instances.

Create Date: 2026-11-30 04:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sonobridge.common.db import UtcDateTime

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "quality_labels",
        sa.Column("read_id", sa.String(length=64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("series_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("labelled_by", sa.String(length=128), nullable=False),
        sa.Column("labelled_role", sa.String(length=32), nullable=False),
        sa.Column("labelled_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("read_id", "sop_instance_uid"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("quality_labels")
