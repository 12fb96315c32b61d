"""device validation states, expert quality labels and the audit log

Create Date: 2026-11-30 03:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sonobridge.common.ddl import create_audit_table, drop_audit_table

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "device_validations",
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("manufacturer", sa.String(length=128), nullable=False),
        sa.Column("device_model_name", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("model_name", "manufacturer", "device_model_name"),
    )
    op.create_table(
        "quality_labels",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("manufacturer", sa.String(length=128), nullable=False),
        sa.Column("device_model_name", sa.String(length=128), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("expert_fault", sa.String(length=32), nullable=True),
        sa.Column("model_flagged", sa.Boolean(), nullable=False),
        sa.Column("labelled_by", sa.String(length=255), nullable=False),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_name", "sop_instance_uid", name="uq_quality_label_instance"),
    )
    op.create_index(
        "ix_quality_labels_window",
        "quality_labels",
        ["model_name", "manufacturer", "device_model_name", "id"],
        unique=False,
    )
    create_audit_table()


def downgrade() -> None:
    """Revert this revision."""
    drop_audit_table()
    op.drop_index("ix_quality_labels_window", table_name="quality_labels")
    op.drop_table("quality_labels")
    op.drop_table("device_validations")
