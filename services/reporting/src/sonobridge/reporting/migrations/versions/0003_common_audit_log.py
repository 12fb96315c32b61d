"""Move the audit log to the common audit record's schema (rows and ids kept).

A record about a read names the read as its resource and the read's report as the related
one; a record about a report alone names the report; the user becomes the actor.

Create Date: 2026-11-30 03:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sonobridge.common.ddl import move_audit_log, restore_own_audit_log

revision = "0003"
down_revision = "0002"

COMMON_COLUMNS = (
    'SELECT id, at, "user", roles, NULL, action,'
    " CASE WHEN read_id IS NOT NULL THEN 'read' WHEN report_id IS NOT NULL THEN 'report'"
    " ELSE '' END,"
    " COALESCE(read_id, report_id, ''), CASE WHEN read_id IS NOT NULL THEN report_id END,"
    " 'ok', NULL, NULL, NULLIF(detail, '') FROM audit_log"
)


def upgrade() -> None:
    """Apply this revision."""
    move_audit_log(COMMON_COLUMNS, old_indexes=("ix_audit_log_read_id", "ix_audit_log_report_id"))


def downgrade() -> None:
    """Revert this revision (the columns reporting never wrote are dropped)."""
    restore_own_audit_log(
        [
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("user", sa.String(length=128), nullable=False),
            sa.Column("roles", sa.String(length=255), nullable=False),
            sa.Column("action", sa.String(length=64), nullable=False),
            sa.Column("read_id", sa.String(length=64), nullable=True),
            sa.Column("report_id", sa.String(length=64), nullable=True),
            sa.Column("detail", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        ],
        'INSERT INTO audit_log_own (id, at, "user", roles, action, read_id, report_id, detail)'
        " SELECT id, at, substr(actor, 1, 128), roles, action,"
        " CASE WHEN resource_type = 'read' THEN resource_id END,"
        " CASE WHEN resource_type = 'read' THEN related_id"
        " WHEN resource_type = 'report' THEN resource_id END,"
        " COALESCE(detail, '') FROM audit_log",
    )
    op.create_index("ix_audit_log_read_id", "audit_log", ["read_id"], unique=False)
    op.create_index("ix_audit_log_report_id", "audit_log", ["report_id"], unique=False)
