"""Register DIMSE calling AE titles per institution.

Create Date: 2026-11-29 23:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "dimse_callers",
        sa.Column("ae_title", sa.String(length=16), primary_key=True),
        sa.Column("institution_id", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_dimse_callers_institution_id", "dimse_callers", ["institution_id"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_dimse_callers_institution_id", table_name="dimse_callers")
    op.drop_table("dimse_callers")
