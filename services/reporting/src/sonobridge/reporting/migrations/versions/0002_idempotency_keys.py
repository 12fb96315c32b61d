"""idempotency keys

Create Date: 2026-11-22 10:07:39.702238
"""

from __future__ import annotations

from alembic import op

from sonobridge.common.ddl import create_idempotency_table

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    """Apply this revision."""
    create_idempotency_table()


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("idempotency_keys")
