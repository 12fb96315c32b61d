"""Alembic DDL for the tables every service shares in shape: outbox, inbox, audit log, keys."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem
from sqlalchemy.sql.elements import ColumnElement


def create_delivery_tables(outbox_created_default: ColumnElement[Any] | None = None) -> None:
    """Create the outbox and inbox as `common.delivery.delivery_tables` first declared them.

    `create_inbox_age_index` adds what came later. Inference's first revision stamped outbox
    rows with `now()`; it passes that default so its applied schema stays as it was.
    """
    created_default: ColumnElement[Any] | sa.TextClause = (
        sa.text("(CURRENT_TIMESTAMP)") if outbox_created_default is None else outbox_created_default
    )
    op.create_table(
        "inbox",
        sa.Column("consumer_group", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=255), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer_group", "event_id"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=255), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=created_default,
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"], unique=False)


def drop_delivery_tables() -> None:
    """Drop the outbox and inbox."""
    op.drop_index("ix_outbox_published_at", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("inbox")


def create_inbox_age_index() -> None:
    """Index the inbox by `processed_at`, which the delivery retention purges by."""
    op.create_index("ix_inbox_processed_at", "inbox", ["processed_at"], unique=False)


def drop_inbox_age_index() -> None:
    """Drop the index `create_inbox_age_index` made."""
    op.drop_index("ix_inbox_processed_at", table_name="inbox")


def create_audit_table(name: str = "audit_log") -> None:
    """Create the audit table exactly as `common.sql_records.audit_table` declares it."""
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("roles", sa.String(length=255), nullable=False),
        sa.Column("institution_id", sa.String(length=128), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=255), nullable=False),
        sa.Column("related_id", sa.String(length=255), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("at", "actor", "resource_id", "related_id"):
        op.create_index(f"ix_{name}_{column}", name, [column], unique=False)


def drop_audit_table() -> None:
    """Drop the audit table `create_audit_table` made, with its indexes."""
    for column in ("at", "actor", "resource_id", "related_id"):
        op.drop_index(f"ix_audit_log_{column}", table_name="audit_log")
    op.drop_table("audit_log")


def create_idempotency_table(name: str = "idempotency_keys") -> None:
    """Create the keys table exactly as `common.sql_records.idempotency_table` declares it."""
    op.create_table(
        name,
        sa.Column("user", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request", sa.String(length=512), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user", "key"),
    )


def idempotency_rows(name: str = "idempotency_keys") -> sa.TableClause:
    """Return the keys table's columns for a data move (select or bulk insert)."""
    return sa.table(
        name,
        sa.column("user", sa.String()),
        sa.column("key", sa.String()),
        sa.column("request", sa.String()),
        sa.column("status", sa.Integer()),
        sa.column("body", sa.JSON()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )


AUDIT_COLUMNS = (
    "id, at, actor, roles, institution_id, action, resource_type, resource_id, related_id, "
    "outcome, channel, request_id, detail"
)


def move_audit_log(select_common_columns: str, *, old_indexes: tuple[str, ...] = ()) -> None:
    """Replace a service's own audit table by the common one, copying every row.

    `select_common_columns` is a SELECT over the old `audit_log` giving, in order, the columns
    of AUDIT_COLUMNS; ids are kept, so cursors handed out before the move stay valid.
    """
    create_audit_table("audit_log_common")
    op.execute(f"INSERT INTO audit_log_common ({AUDIT_COLUMNS}) {select_common_columns}")
    for index in old_indexes:
        op.drop_index(index, table_name="audit_log")
    op.drop_table("audit_log")
    _rename_audit_table("audit_log_common", "audit_log")


def restore_own_audit_log(columns: list[SchemaItem], insert_from_common: str) -> None:
    """Undo `move_audit_log`: rebuild a service's own audit table from the common one.

    `columns` declare the old table; `insert_from_common` is the INSERT INTO `audit_log_own`
    that reads the common `audit_log`.
    """
    op.create_table("audit_log_own", *columns)
    op.execute(insert_from_common)
    drop_audit_table()
    op.rename_table("audit_log_own", "audit_log")


def _rename_audit_table(old: str, new: str) -> None:
    op.rename_table(old, new)
    for column in ("at", "actor", "resource_id", "related_id"):
        # Index names follow the table's, as `audit_table` declares them on `audit_log`.
        op.drop_index(f"ix_{old}_{column}", table_name=new)
        op.create_index(f"ix_{new}_{column}", new, [column], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # The key and the id sequence keep their old names, and the sequence must continue
        # after the copied ids. Table names here are this module's constants, never input.
        op.execute(f"ALTER TABLE {new} RENAME CONSTRAINT {old}_pkey TO {new}_pkey")
        op.execute(f"ALTER SEQUENCE {old}_id_seq RENAME TO {new}_id_seq")
        last = f"COALESCE((SELECT max(id) FROM {new}), 0) + 1"  # noqa: S608
        op.execute(f"SELECT setval('{new}_id_seq', {last}, false)")
