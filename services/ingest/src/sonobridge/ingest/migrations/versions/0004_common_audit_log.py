"""Move the audit log to the common audit record's schema (rows kept).

Ingest's audit table already had the shared columns; it gains the related resource and the
request id, its channel becomes optional, and records are indexed by resource.

Create Date: 2026-11-30 03:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("related_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
        batch.alter_column("channel", existing_type=sa.String(length=16), nullable=True)
        batch.create_index("ix_audit_log_resource_id", ["resource_id"])
        batch.create_index("ix_audit_log_related_id", ["related_id"])


def downgrade() -> None:
    """Revert this revision (records without a channel get 'unknown')."""
    op.execute("UPDATE audit_log SET channel = 'unknown' WHERE channel IS NULL")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_index("ix_audit_log_related_id")
        batch.drop_index("ix_audit_log_resource_id")
        batch.alter_column("channel", existing_type=sa.String(length=16), nullable=False)
        batch.drop_column("request_id")
        batch.drop_column("related_id")
