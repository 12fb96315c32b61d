"""create inference tables

Create Date: 2026-11-22 09:50:31.012632
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sonobridge.common.ddl import create_delivery_tables, drop_delivery_tables

revision = "0001"
down_revision = None


def upgrade() -> None:
    """Apply this revision."""

    create_delivery_tables(outbox_created_default=sa.func.now())
    op.create_table(
        "inference_results",
        sa.Column("inference_id", sa.String(length=64), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("model_versions", sa.String(length=512), nullable=False),
        sa.Column("exam_id", sa.String(length=64), nullable=False),
        sa.Column("exam_type", sa.String(length=32), nullable=False),
        sa.Column("institution_id", sa.String(length=128), nullable=False),
        sa.Column("device_serial", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("exam_acceptable", sa.String(length=8), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("derived_object_keys", sa.JSON(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("source_event_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("inference_id"),
        sa.UniqueConstraint(
            "study_instance_uid", "manifest_sha256", "model_versions", name="uq_inference_result"
        ),
    )
    with op.batch_alter_table("inference_results", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inference_results_study_instance_uid"),
            ["study_instance_uid"],
            unique=False,
        )


def downgrade() -> None:
    """Revert this revision."""

    drop_delivery_tables()
    with op.batch_alter_table("inference_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inference_results_study_instance_uid"))

    op.drop_table("inference_results")
