"""Tables of the maintenance service, on one MetaData (the migrations create them)."""

from __future__ import annotations

import sqlalchemy as sa

from sonobridge.common.db import UtcDateTime
from sonobridge.common.delivery import delivery_tables
from sonobridge.common.sql_records import audit_table, history_table, idempotency_table

metadata = sa.MetaData()


devices = sa.Table(
    "devices",
    metadata,
    sa.Column("serial", sa.String(128), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("manufacturer", sa.String(128), nullable=False, default=""),
    sa.Column("institution_id", sa.String(128), nullable=False, index=True),
    sa.Column("firmware_version", sa.String(64), nullable=False, default=""),
    sa.Column("firmware_seen_at", UtcDateTime),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("spare", sa.Boolean, nullable=False, default=False),
    sa.Column("loaned_to", sa.String(128), nullable=False, default=""),
    sa.Column("operators", sa.JSON, nullable=False),
    sa.Column("registered_at", UtcDateTime, nullable=False),
    sa.Column("last_seen_at", UtcDateTime),
)

device_history = history_table(
    metadata,
    "device_history",
    "serial",
    128,
    sa.Column("from_value", sa.String(128), nullable=False, default=""),
    sa.Column("to_value", sa.String(128), nullable=False, default=""),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("ticket_id", sa.String(64), nullable=False, default=""),
)

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("device_serial", sa.String(128), nullable=False, index=True),
    sa.Column("institution_id", sa.String(128), nullable=False, index=True),
    sa.Column("symptom", sa.Text, nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("opened_by", sa.String(128), nullable=False),
    sa.Column("opened_at", UtcDateTime, nullable=False),
    sa.Column("ack_target_seconds", sa.Float, nullable=False),
    sa.Column("onsite_target_seconds", sa.Float, nullable=False),
    sa.Column("state", sa.String(32), nullable=False, index=True),
    sa.Column("assignee", sa.String(128), nullable=False, default=""),
    sa.Column("region", sa.String(128), nullable=False, default=""),
    sa.Column("evidence_keys", sa.JSON, nullable=False),
    sa.Column("study_instance_uid", sa.String(128), nullable=False, default=""),
    sa.Column("acknowledged_at", UtcDateTime),
    sa.Column("dispatched_at", UtcDateTime),
    sa.Column("on_site_at", UtcDateTime),
    sa.Column("resolved_at", UtcDateTime),
    sa.Column("closed_at", UtcDateTime),
    sa.Column("cancelled_at", UtcDateTime),
    sa.Column("ack_breached", sa.Boolean, nullable=False, default=False),
    sa.Column("onsite_breached", sa.Boolean, nullable=False, default=False),
    sa.Column("loaner_serial", sa.String(128), nullable=False, default=""),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # Which rule opened an automatic ticket (telemetry rule or preventive task), for dedupe.
    sa.Column("rule", sa.String(64), nullable=False, default=""),
    sa.Column("version", sa.Integer, nullable=False, default=1),
)

ticket_pauses = sa.Table(
    "ticket_pauses",
    metadata,
    sa.Column("ticket_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime),
    sa.Column("reason", sa.Text, nullable=False),
)

ticket_history = history_table(
    metadata,
    "ticket_history",
    "ticket_id",
    64,
    sa.Column("from_state", sa.String(32), nullable=False),
    sa.Column("to_state", sa.String(32), nullable=False),
    sa.Column("assignee", sa.String(128), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
)

sla_timers = sa.Table(
    "sla_timers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String(64), nullable=False),
    sa.Column("clock", sa.String(16), nullable=False),
    # NULL while the ticket is paused: a suspended timer can never fire.
    sa.Column("due_at", UtcDateTime, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("fired_at", UtcDateTime),
    sa.UniqueConstraint("ticket_id", "clock", name="uq_sla_timers_ticket_clock"),
)

idempotency_keys = idempotency_table(metadata)

telemetry_batches = sa.Table(
    "telemetry_batches",
    metadata,
    sa.Column("batch_id", sa.String(128), primary_key=True),
    sa.Column("device_serial", sa.String(128), nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("accepted", sa.Integer, nullable=False),
    sa.Column("duplicates", sa.Integer, nullable=False),
    sa.Column("opened_ticket_ids", sa.JSON, nullable=False),
)

telemetry_samples = sa.Table(
    "telemetry_samples",
    metadata,
    sa.Column("device_serial", sa.String(128), primary_key=True),
    sa.Column("recorded_at", UtcDateTime, primary_key=True),
    sa.Column("battery_percent", sa.Float),
    sa.Column("temperature_c", sa.Float),
    sa.Column("drops", sa.Integer, nullable=False, default=0),
    sa.Column("scan_seconds", sa.Float, nullable=False, default=0),
    sa.Column("firmware_version", sa.String(64), nullable=False, default=""),
    sa.Column("error_codes", sa.JSON, nullable=False),
    sa.Column("batch_id", sa.String(128), nullable=False, default=""),
)

probe_findings = sa.Table(
    "probe_findings",
    metadata,
    sa.Column("finding_id", sa.String(128), primary_key=True),
    sa.Column("device_serial", sa.String(128), nullable=False, index=True),
    sa.Column("institution_id", sa.String(128), nullable=False),
    sa.Column("study_instance_uid", sa.String(128), nullable=False),
    sa.Column("observed_at", UtcDateTime, nullable=False),
    sa.Column("dead_element_fraction", sa.Float, nullable=False),
    sa.Column("dead_element_columns", sa.Integer, nullable=False),
    sa.Column("evidence_keys", sa.JSON, nullable=False),
    sa.Column("ticket_id", sa.String(64), index=True),
    sa.Column("fault_signal", sa.Boolean, nullable=False, server_default=sa.true()),
)

exam_usage = sa.Table(
    "exam_usage",
    metadata,
    sa.Column("exam_key", sa.String(128), primary_key=True),
    sa.Column("device_serial", sa.String(128), nullable=False),
    sa.Column("institution_id", sa.String(128), nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("scan_seconds", sa.Float, nullable=False),
)

daily_usage = sa.Table(
    "daily_usage",
    metadata,
    sa.Column("device_serial", sa.String(128), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("institution_id", sa.String(128), nullable=False),
    sa.Column("exam_seconds", sa.Float, nullable=False, default=0),
    sa.Column("telemetry_seconds", sa.Float, nullable=False, default=0),
)

preventive_tasks = sa.Table(
    "preventive_tasks",
    metadata,
    sa.Column("device_serial", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(64), primary_key=True),
    sa.Column("next_due_at", UtcDateTime, nullable=False, index=True),
    sa.Column("last_done_at", UtcDateTime),
    sa.Column("open_ticket_id", sa.String(64)),
)

audit_log = audit_table(metadata)

outbox, inbox = delivery_tables(metadata)
