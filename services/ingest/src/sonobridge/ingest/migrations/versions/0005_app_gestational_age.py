"""Keep the gestational age the app sends with an upload on its instance.

Create Date: 2026-11-30 03:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("app_gestational_age_weeks", sa.Float(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("app_gestational_age_weeks")
