"""per-instance verdicts of serving and shadow versions of the gating models

Create Date: 2026-11-30 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "quality_verdicts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("manufacturer", sa.String(length=128), nullable=False),
        sa.Column("device_model_name", sa.String(length=128), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "model_name", "model_version", "sop_instance_uid", name="uq_quality_verdict_instance"
        ),
    )
    op.create_index(
        "ix_quality_verdicts_instance", "quality_verdicts", ["sop_instance_uid"], unique=False
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_quality_verdicts_instance", table_name="quality_verdicts")
    op.drop_table("quality_verdicts")
