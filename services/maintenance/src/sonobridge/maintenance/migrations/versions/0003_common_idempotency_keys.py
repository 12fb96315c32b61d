"""Move ticket-opening Idempotency-Keys to the common keys table (every key kept).

The common table stores the request's fingerprint and the answer. Keys taken before this
revision were never fingerprinted: they move with an empty fingerprint, which replays their
ticket for any retry, exactly as they did when they were issued.

Create Date: 2026-11-30 03:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sonobridge.common.ddl import create_idempotency_table, idempotency_rows

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    """Apply this revision."""
    keys = sa.table(
        "idempotency_keys",
        sa.column("scope", sa.String()),
        sa.column("key", sa.String()),
        sa.column("ticket_id", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    rows = op.get_bind().execute(sa.select(keys)).all()
    op.drop_table("idempotency_keys")
    create_idempotency_table()
    if rows:
        op.bulk_insert(
            idempotency_rows(),
            [
                {
                    "user": r.scope,
                    "key": r.key,
                    "request": "",
                    "status": 201,
                    "body": {"ticket_id": r.ticket_id},
                    "created_at": r.created_at,
                }
                for r in rows
            ],
        )


def downgrade() -> None:
    """Revert this revision (keys longer than the old column are dropped)."""
    rows = op.get_bind().execute(sa.select(idempotency_rows())).all()
    op.drop_table("idempotency_keys")
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    old = sa.table(
        "idempotency_keys",
        sa.column("scope", sa.String()),
        sa.column("key", sa.String()),
        sa.column("ticket_id", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    kept = [
        {
            "scope": r.user,
            "key": r.key,
            "ticket_id": r.body["ticket_id"],
            "created_at": r.created_at,
        }
        for r in rows
        if len(r.key) <= 128 and "ticket_id" in r.body
    ]
    if kept:
        op.bulk_insert(old, kept)
