"""SQLAlchemy tables of the reporting service, on one MetaData (migrations create them all)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from sonobridge.common.db import UtcDateTime
from sonobridge.common.delivery import delivery_tables
from sonobridge.common.sql_records import audit_table, idempotency_table

metadata = MetaData()

# The column type repositories cast literals to, so they compare as timestamps.
TS = UtcDateTime()


outbox, inbox = delivery_tables(metadata)

exams = Table(
    "exams",
    metadata,
    Column("study_uid", String(128), primary_key=True),
    Column("exam_id", String(64), nullable=False),
    Column("institution", String(128), nullable=False),
    Column("operator", String(128), nullable=False),
    Column("device_serial", String(128), nullable=False),
    Column("exam_type", String(32), nullable=False),
    Column("patient_ref", String(128), nullable=False),
    Column("completed_at", UtcDateTime, nullable=True),
    Column("received_at", UtcDateTime, nullable=False),
    Column("instances", JSON, nullable=False),
)

reads = Table(
    "reads",
    metadata,
    Column("read_id", String(64), primary_key=True),
    Column("study_uid", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("exam_id", String(64), nullable=False),
    Column("institution", String(128), nullable=False),
    Column("operator", String(128), nullable=False),
    Column("device_serial", String(128), nullable=False),
    Column("exam_type", String(32), nullable=False),
    Column("patient_ref", String(128), nullable=False),
    Column("route", String(32), nullable=False),
    Column("worklist", String(128), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("state", String(32), nullable=False),
    Column("assigned_to", String(128), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("due_at", UtcDateTime, nullable=True),
    Column("first_due_at", UtcDateTime, nullable=True),
    Column("exam_completed_at", UtcDateTime, nullable=True),
    Column("escalation_level", Integer, nullable=False, default=0),
    Column("policy_version", String(64), nullable=False),
    Column("rule", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("audit_sampled", Boolean, nullable=False, default=False),
    Column("audit_of", String(64), nullable=True),
    Column("inference_id", String(128), nullable=True),
    Column("inference_status", String(16), nullable=False),
    Column("exam_quality", JSON, nullable=True),
    Column("ai_findings", JSON, nullable=False),
    Column("ai_models", JSON, nullable=False),
    Column("report_id", String(64), nullable=True),
    Column("signed_at", UtcDateTime, nullable=True),
    # One primary read per exam: redelivered or re-published AI results cannot add a second.
    UniqueConstraint("study_uid", "kind", name="uq_reads_study_kind"),
    Index("ix_reads_worklist_state", "worklist", "state"),
    Index("ix_reads_assigned_state", "assigned_to", "state"),
)

read_history = Table(
    "read_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("read_id", String(64), nullable=False, index=True),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("worklist", String(128), nullable=False),
    Column("assigned_to", String(128), nullable=True),
    Column("detail", Text, nullable=False, default=""),
)

timers = Table(
    "timers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("fire_at", UtcDateTime, nullable=False),
    Column("fired_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # A deadline is armed once per subject, kind and instant, whatever re-arms it.
    UniqueConstraint("subject", "kind", "fire_at", name="uq_timers_subject_kind_at"),
    Index("ix_timers_due", "fired_at", "fire_at"),
)

shifts = Table(
    "shifts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("worklist", String(128), nullable=False, index=True),
    Column("user", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("institution", String(128), nullable=True),
    Column("starts_at", UtcDateTime, nullable=False),
    Column("ends_at", UtcDateTime, nullable=False),
)

drafts = Table(
    "drafts",
    metadata,
    Column("read_id", String(64), primary_key=True),
    Column("language", String(8), nullable=False),
    Column("title", Text, nullable=False),
    Column("findings_text", Text, nullable=False),
    Column("conclusion", Text, nullable=False),
    Column("findings", JSON, nullable=False),
    Column("updated_by", String(128), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("revision", Integer, nullable=False),
)

ai_verdicts = Table(
    "ai_verdicts",
    metadata,
    Column("read_id", String(64), primary_key=True),
    Column("finding_code", String(128), primary_key=True),
    Column("model_name", String(128), primary_key=True),
    Column("model_version", String(64), nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("decided_by", String(128), nullable=False),
    Column("decided_at", UtcDateTime, nullable=False),
)

quality_labels = Table(
    "quality_labels",
    metadata,
    Column("read_id", String(64), primary_key=True),
    Column("sop_instance_uid", String(128), primary_key=True),
    Column("series_instance_uid", String(128), nullable=False),
    Column("label", String(16), nullable=False),
    Column("reason", String(32), nullable=False, default=""),
    Column("labelled_by", String(128), nullable=False),
    Column("labelled_role", String(32), nullable=False),
    Column("labelled_at", UtcDateTime, nullable=False),
)

report_versions = Table(
    "report_versions",
    metadata,
    Column("report_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("read_id", String(64), nullable=False, index=True),
    Column("study_uid", String(128), nullable=False),
    Column("institution", String(128), nullable=False),
    Column("language", String(8), nullable=False),
    Column("title", Text, nullable=False),
    Column("findings_text", Text, nullable=False),
    Column("conclusion", Text, nullable=False),
    Column("findings", JSON, nullable=False),
    Column("ai_agreement", JSON, nullable=False),
    Column("signed_by", String(128), nullable=False),
    Column("signed_at", UtcDateTime, nullable=False),
    Column("amended_from_version", Integer, nullable=False, default=0),
    Column("amend_reason", Text, nullable=False, default=""),
    Column("pdf_key", String(255), nullable=False),
    Column("json_key", String(255), nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("report_id", String(64), nullable=False),
    Column("report_version", Integer, nullable=False),
    Column("read_id", String(64), nullable=False),
    Column("study_uid", String(128), nullable=False),
    Column("institution", String(128), nullable=False, index=True),
    Column("matched_terms", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("raised_at", UtcDateTime, nullable=False),
    Column("acknowledged_by", String(128), nullable=True),
    Column("acknowledged_at", UtcDateTime, nullable=True),
    Column("closed_by", String(128), nullable=True),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("note", Text, nullable=False, default=""),
    UniqueConstraint("report_id", "report_version", name="uq_alerts_report_version"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recipient_user", String(128), nullable=True, index=True),
    Column("recipient_role", String(32), nullable=True),
    Column("recipient_institution", String(128), nullable=True),
    Column("kind", String(32), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("payload", JSON, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("target", String(1024), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("delivery_id", String(64), nullable=False, unique=True),
    Column("body", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime, nullable=True),
    Column("gave_up_at", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=False, default=""),
    Index("ix_deliveries_pending", "delivered_at", "gave_up_at", "next_attempt_at"),
)

audit_log = audit_table(metadata)

idempotency_keys = idempotency_table(metadata)
