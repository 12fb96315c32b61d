"""Move exam-opening Idempotency-Keys to the common keys table (a retry still replays).

Ingest's keys stored the request's digest and the exam it opened. They move with that digest
as the fingerprint and `{"exam_id": ...}` as the answer, which is what `create_exam` now
fingerprints and remembers, so a retry of the same request replays its exam and a different
request under the key is refused (now 422, like the other services). Owners longer than the
common column (128) cannot move and are dropped: losing such a key is harmless, because a retry
names its exam id and is answered as a repeat of that exam.

Create Date: 2026-11-30 04:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sonobridge.common.ddl import create_idempotency_table, idempotency_rows

revision = "0006"
down_revision = "0005"

TABLE = "idempotency_keys"
OWNER_CHARS = 128
DIGEST_CHARS = 64

_old = sa.table(
    TABLE,
    sa.column("owner", sa.String()),
    sa.column("key", sa.String()),
    sa.column("request_sha256", sa.String()),
    sa.column("exam_id", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
_common = idempotency_rows(TABLE)


def upgrade() -> None:
    """Apply this revision."""
    rows = op.get_bind().execute(sa.select(_old)).all()
    op.drop_table(TABLE)
    create_idempotency_table(TABLE)
    moved = [
        {
            "user": r.owner,
            "key": r.key,
            "request": r.request_sha256,
            "status": 201,
            "body": {"exam_id": r.exam_id},
            "created_at": r.created_at,
        }
        for r in rows
        if len(r.owner) <= OWNER_CHARS
    ]
    if moved:
        op.bulk_insert(_common, moved)


def downgrade() -> None:
    """Revert this revision (keys whose answer names no exam, or no digest, are dropped)."""
    rows = op.get_bind().execute(sa.select(_common)).all()
    op.drop_table(TABLE)
    op.create_table(
        TABLE,
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_sha256", sa.String(length=DIGEST_CHARS), nullable=False),
        sa.Column("exam_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", "key"),
    )
    kept = [
        {
            "owner": r.user,
            "key": r.key,
            "request_sha256": r.request,
            "exam_id": r.body["exam_id"],
            "created_at": r.created_at,
        }
        for r in rows
        if isinstance(r.body, dict) and "exam_id" in r.body and len(r.request) <= DIGEST_CHARS
    ]
    if kept:
        op.bulk_insert(_old, kept)
