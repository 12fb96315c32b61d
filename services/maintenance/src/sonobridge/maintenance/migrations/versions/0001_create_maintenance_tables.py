"""create maintenance tables

Create Date: 2026-11-22 09:36:01.238603
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sonobridge.common.ddl import create_delivery_tables, drop_delivery_tables

revision = "0001"
down_revision = None


def upgrade() -> None:
    """Apply this revision."""

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "daily_usage",
        sa.Column("device_serial", sa.String(length=128), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("institution_id", sa.String(length=128), nullable=False),
        sa.Column("exam_seconds", sa.Float(), nullable=False),
        sa.Column("telemetry_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("device_serial", "day"),
    )
    op.create_table(
        "device_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("serial", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("from_value", sa.String(length=128), nullable=False),
        sa.Column("to_value", sa.String(length=128), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("device_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_device_history_serial"), ["serial"], unique=False)

    op.create_table(
        "devices",
        sa.Column("serial", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("manufacturer", sa.String(length=128), nullable=False),
        sa.Column("institution_id", sa.String(length=128), nullable=False),
        sa.Column("firmware_version", sa.String(length=64), nullable=False),
        sa.Column("firmware_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("spare", sa.Boolean(), nullable=False),
        sa.Column("loaned_to", sa.String(length=128), nullable=False),
        sa.Column("operators", sa.JSON(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("serial"),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_devices_institution_id"), ["institution_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_devices_status"), ["status"], unique=False)

    op.create_table(
        "exam_usage",
        sa.Column("exam_key", sa.String(length=128), nullable=False),
        sa.Column("device_serial", sa.String(length=128), nullable=False),
        sa.Column("institution_id", sa.String(length=128), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("scan_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("exam_key"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    create_delivery_tables()

    op.create_table(
        "preventive_tasks",
        sa.Column("device_serial", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("open_ticket_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("device_serial", "kind"),
    )
    with op.batch_alter_table("preventive_tasks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_preventive_tasks_next_due_at"), ["next_due_at"], unique=False
        )

    op.create_table(
        "probe_findings",
        sa.Column("finding_id", sa.String(length=128), nullable=False),
        sa.Column("device_serial", sa.String(length=128), nullable=False),
        sa.Column("institution_id", sa.String(length=128), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dead_element_fraction", sa.Float(), nullable=False),
        sa.Column("dead_element_columns", sa.Integer(), nullable=False),
        sa.Column("evidence_keys", sa.JSON(), nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("finding_id"),
    )
    with op.batch_alter_table("probe_findings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_probe_findings_device_serial"), ["device_serial"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_probe_findings_ticket_id"), ["ticket_id"], unique=False
        )

    op.create_table(
        "sla_timers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.Column("clock", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_id", "clock", name="uq_sla_timers_ticket_clock"),
    )
    with op.batch_alter_table("sla_timers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sla_timers_due_at"), ["due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sla_timers_status"), ["status"], unique=False)

    op.create_table(
        "telemetry_batches",
        sa.Column("batch_id", sa.String(length=128), nullable=False),
        sa.Column("device_serial", sa.String(length=128), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("opened_ticket_ids", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id"),
    )
    op.create_table(
        "telemetry_samples",
        sa.Column("device_serial", sa.String(length=128), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("battery_percent", sa.Float(), nullable=True),
        sa.Column("temperature_c", sa.Float(), nullable=True),
        sa.Column("drops", sa.Integer(), nullable=False),
        sa.Column("scan_seconds", sa.Float(), nullable=False),
        sa.Column("firmware_version", sa.String(length=64), nullable=False),
        sa.Column("error_codes", sa.JSON(), nullable=False),
        sa.Column("batch_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("device_serial", "recorded_at"),
    )
    op.create_table(
        "ticket_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=32), nullable=False),
        sa.Column("to_state", sa.String(length=32), nullable=False),
        sa.Column("assignee", sa.String(length=128), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ticket_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ticket_history_ticket_id"), ["ticket_id"], unique=False
        )

    op.create_table(
        "ticket_pauses",
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", "seq"),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("device_serial", sa.String(length=128), nullable=False),
        sa.Column("institution_id", sa.String(length=128), nullable=False),
        sa.Column("symptom", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("opened_by", sa.String(length=128), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ack_target_seconds", sa.Float(), nullable=False),
        sa.Column("onsite_target_seconds", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("assignee", sa.String(length=128), nullable=False),
        sa.Column("region", sa.String(length=128), nullable=False),
        sa.Column("evidence_keys", sa.JSON(), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("on_site_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ack_breached", sa.Boolean(), nullable=False),
        sa.Column("onsite_breached", sa.Boolean(), nullable=False),
        sa.Column("loaner_serial", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tickets_device_serial"), ["device_serial"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_tickets_institution_id"), ["institution_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_tickets_state"), ["state"], unique=False)


def downgrade() -> None:
    """Revert this revision."""

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_state"))
        batch_op.drop_index(batch_op.f("ix_tickets_institution_id"))
        batch_op.drop_index(batch_op.f("ix_tickets_device_serial"))

    op.drop_table("tickets")
    op.drop_table("ticket_pauses")
    with op.batch_alter_table("ticket_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_history_ticket_id"))

    op.drop_table("ticket_history")
    op.drop_table("telemetry_samples")
    op.drop_table("telemetry_batches")
    with op.batch_alter_table("sla_timers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_timers_status"))
        batch_op.drop_index(batch_op.f("ix_sla_timers_due_at"))

    op.drop_table("sla_timers")
    with op.batch_alter_table("probe_findings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_probe_findings_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_probe_findings_device_serial"))

    op.drop_table("probe_findings")
    with op.batch_alter_table("preventive_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_preventive_tasks_next_due_at"))

    op.drop_table("preventive_tasks")

    drop_delivery_tables()
    op.drop_table("idempotency_keys")
    op.drop_table("exam_usage")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devices_status"))
        batch_op.drop_index(batch_op.f("ix_devices_institution_id"))

    op.drop_table("devices")
    with op.batch_alter_table("device_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_history_serial"))

    op.drop_table("device_history")
    op.drop_table("daily_usage")
    op.drop_table("audit_log")
