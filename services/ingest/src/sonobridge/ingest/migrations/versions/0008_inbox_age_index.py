"""Index the inbox by when each event was processed, for the delivery retention's purge.

The retention deletes inbox records older than DELIVERY__INBOX_RETENTION_DAYS, oldest first, in
small batches; without this index each batch would scan the whole inbox.

Create Date: 2026-12-01 11:00:00
"""

from __future__ import annotations

from sonobridge.common.ddl import create_inbox_age_index, drop_inbox_age_index

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    """Apply this revision."""
    create_inbox_age_index()


def downgrade() -> None:
    """Revert this revision."""
    drop_inbox_age_index()
