"""Store clean exams that interrupt a probe's pending dead-element signals.

Rows stored before this revision were all fault signals, hence the server default.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 06:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add probe_findings.fault_signal."""
    with op.batch_alter_table("probe_findings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fault_signal", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    """Drop probe_findings.fault_signal."""
    with op.batch_alter_table("probe_findings", schema=None) as batch_op:
        batch_op.drop_column("fault_signal")
