"""Keep the calibration the app sends with an upload on its instance.

Create Date: 2026-11-22 12:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("app_pixel_spacing", sa.String(length=64), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("app_pixel_spacing")
