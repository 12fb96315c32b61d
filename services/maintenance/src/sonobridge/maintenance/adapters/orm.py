"""Tables of the maintenance service, on one MetaData (the migrations create them)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    true,
)

from sonobridge.common.db import UtcDateTime
from sonobridge.common.delivery import delivery_tables
from sonobridge.common.sql_records import audit_table, idempotency_table

metadata = MetaData()


devices = Table(
    "devices",
    metadata,
    Column("serial", String(128), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("manufacturer", String(128), nullable=False, default=""),
    Column("institution_id", String(128), nullable=False, index=True),
    Column("firmware_version", String(64), nullable=False, default=""),
    Column("firmware_seen_at", UtcDateTime),
    Column("status", String(32), nullable=False, index=True),
    Column("spare", Boolean, nullable=False, default=False),
    Column("loaned_to", String(128), nullable=False, default=""),
    Column("operators", JSON, nullable=False),
    Column("registered_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime),
)

device_history = Table(
    "device_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("serial", String(128), nullable=False, index=True),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("from_value", String(128), nullable=False, default=""),
    Column("to_value", String(128), nullable=False, default=""),
    Column("actor", String(128), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("ticket_id", String(64), nullable=False, default=""),
)

tickets = Table(
    "tickets",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("device_serial", String(128), nullable=False, index=True),
    Column("institution_id", String(128), nullable=False, index=True),
    Column("symptom", Text, nullable=False),
    Column("source", String(32), nullable=False),
    Column("opened_by", String(128), nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("ack_target_seconds", Float, nullable=False),
    Column("onsite_target_seconds", Float, nullable=False),
    Column("state", String(32), nullable=False, index=True),
    Column("assignee", String(128), nullable=False, default=""),
    Column("region", String(128), nullable=False, default=""),
    Column("evidence_keys", JSON, nullable=False),
    Column("study_instance_uid", String(128), nullable=False, default=""),
    Column("acknowledged_at", UtcDateTime),
    Column("dispatched_at", UtcDateTime),
    Column("on_site_at", UtcDateTime),
    Column("resolved_at", UtcDateTime),
    Column("closed_at", UtcDateTime),
    Column("cancelled_at", UtcDateTime),
    Column("ack_breached", Boolean, nullable=False, default=False),
    Column("onsite_breached", Boolean, nullable=False, default=False),
    Column("loaner_serial", String(128), nullable=False, default=""),
    Column("updated_at", UtcDateTime, nullable=False),
    # Which rule opened an automatic ticket (telemetry rule or preventive task), for dedupe.
    Column("rule", String(64), nullable=False, default=""),
    Column("version", Integer, nullable=False, default=1),
)

ticket_pauses = Table(
    "ticket_pauses",
    metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    Column("reason", Text, nullable=False),
)

ticket_history = Table(
    "ticket_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", String(64), nullable=False, index=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("from_state", String(32), nullable=False),
    Column("to_state", String(32), nullable=False),
    Column("assignee", String(128), nullable=False),
    Column("note", Text, nullable=False),
)

sla_timers = Table(
    "sla_timers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", String(64), nullable=False),
    Column("clock", String(16), nullable=False),
    # NULL while the ticket is paused: a suspended timer can never fire.
    Column("due_at", UtcDateTime, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("fired_at", UtcDateTime),
    UniqueConstraint("ticket_id", "clock", name="uq_sla_timers_ticket_clock"),
)

idempotency_keys = idempotency_table(metadata)

telemetry_batches = Table(
    "telemetry_batches",
    metadata,
    Column("batch_id", String(128), primary_key=True),
    Column("device_serial", String(128), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("duplicates", Integer, nullable=False),
    Column("opened_ticket_ids", JSON, nullable=False),
)

telemetry_samples = Table(
    "telemetry_samples",
    metadata,
    Column("device_serial", String(128), primary_key=True),
    Column("recorded_at", UtcDateTime, primary_key=True),
    Column("battery_percent", Float),
    Column("temperature_c", Float),
    Column("drops", Integer, nullable=False, default=0),
    Column("scan_seconds", Float, nullable=False, default=0),
    Column("firmware_version", String(64), nullable=False, default=""),
    Column("error_codes", JSON, nullable=False),
    Column("batch_id", String(128), nullable=False, default=""),
)

probe_findings = Table(
    "probe_findings",
    metadata,
    Column("finding_id", String(128), primary_key=True),
    Column("device_serial", String(128), nullable=False, index=True),
    Column("institution_id", String(128), nullable=False),
    Column("study_instance_uid", String(128), nullable=False),
    Column("observed_at", UtcDateTime, nullable=False),
    Column("dead_element_fraction", Float, nullable=False),
    Column("dead_element_columns", Integer, nullable=False),
    Column("evidence_keys", JSON, nullable=False),
    Column("ticket_id", String(64), index=True),
    Column("fault_signal", Boolean, nullable=False, server_default=true()),
)

exam_usage = Table(
    "exam_usage",
    metadata,
    Column("exam_key", String(128), primary_key=True),
    Column("device_serial", String(128), nullable=False),
    Column("institution_id", String(128), nullable=False),
    Column("day", Date, nullable=False),
    Column("scan_seconds", Float, nullable=False),
)

daily_usage = Table(
    "daily_usage",
    metadata,
    Column("device_serial", String(128), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("institution_id", String(128), nullable=False),
    Column("exam_seconds", Float, nullable=False, default=0),
    Column("telemetry_seconds", Float, nullable=False, default=0),
)

preventive_tasks = Table(
    "preventive_tasks",
    metadata,
    Column("device_serial", String(128), primary_key=True),
    Column("kind", String(64), primary_key=True),
    Column("next_due_at", UtcDateTime, nullable=False, index=True),
    Column("last_done_at", UtcDateTime),
    Column("open_ticket_id", String(64)),
)

audit_log = audit_table(metadata)

outbox, inbox = delivery_tables(metadata)
