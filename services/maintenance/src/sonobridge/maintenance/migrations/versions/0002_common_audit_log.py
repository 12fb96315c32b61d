"""Move the audit log to the common audit record's schema (rows and ids kept).

The target becomes the resource id, its kind comes from the action's family (`ticket.open`
targets a ticket), and an empty detail becomes NULL, as the common writer stores it.

Create Date: 2026-11-30 03:45:00
"""

from __future__ import annotations

import sqlalchemy as sa

from sonobridge.common.ddl import move_audit_log, restore_own_audit_log

revision = "0002"
down_revision = "0001"

COMMON_COLUMNS = (
    "SELECT id, at, actor, '', NULL, action,"
    " CASE WHEN action LIKE 'ticket.%' THEN 'ticket' WHEN action LIKE 'device.%' THEN 'device'"
    " WHEN action LIKE 'loaner.%' THEN 'loaner' WHEN action LIKE 'telemetry.%' THEN 'telemetry'"
    " ELSE '' END,"
    " target, NULL, 'ok', NULL, NULL, NULLIF(detail, '') FROM audit_log"
)


def upgrade() -> None:
    """Apply this revision."""
    move_audit_log(COMMON_COLUMNS)


def downgrade() -> None:
    """Revert this revision (the columns maintenance never wrote are dropped)."""
    restore_own_audit_log(
        [
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("actor", sa.String(length=128), nullable=False),
            sa.Column("action", sa.String(length=64), nullable=False),
            sa.Column("target", sa.String(length=128), nullable=False),
            sa.Column("detail", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        ],
        "INSERT INTO audit_log_own (id, at, actor, action, target, detail)"
        " SELECT id, at, substr(actor, 1, 128), action, substr(resource_id, 1, 128),"
        " COALESCE(detail, '') FROM audit_log",
    )
