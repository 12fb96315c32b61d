"""SQLAlchemy tables of the reporting service, on one MetaData (migrations create them all)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from sonobridge.common.db import UtcDateTime
from sonobridge.common.delivery import delivery_tables
from sonobridge.common.sql_records import audit_table, history_table, idempotency_table

metadata = sa.MetaData()

# The column type repositories cast literals to, so they compare as timestamps.
TS = UtcDateTime()


outbox, inbox = delivery_tables(metadata)


def _exam_context() -> list[sa.Column[Any]]:
    """The exam's context columns; a read carries them as the exam row does (ExamContext)."""
    return [
        sa.Column("exam_id", sa.String(64), nullable=False),
        sa.Column("institution", sa.String(128), nullable=False),
        sa.Column("operator", sa.String(128), nullable=False),
        sa.Column("device_serial", sa.String(128), nullable=False),
        sa.Column("exam_type", sa.String(32), nullable=False),
        sa.Column("patient_ref", sa.String(128), nullable=False),
    ]


exams = sa.Table(
    "exams",
    metadata,
    sa.Column("study_uid", sa.String(128), primary_key=True),
    *_exam_context(),
    sa.Column("completed_at", UtcDateTime, nullable=True),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("instances", sa.JSON, nullable=False),
)

reads = sa.Table(
    "reads",
    metadata,
    sa.Column("read_id", sa.String(64), primary_key=True),
    sa.Column("study_uid", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    *_exam_context(),
    sa.Column("route", sa.String(32), nullable=False),
    sa.Column("worklist", sa.String(128), nullable=False),
    sa.Column("priority", sa.String(16), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("assigned_to", sa.String(128), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("due_at", UtcDateTime, nullable=True),
    sa.Column("first_due_at", UtcDateTime, nullable=True),
    sa.Column("exam_completed_at", UtcDateTime, nullable=True),
    sa.Column("escalation_level", sa.Integer, nullable=False, default=0),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("audit_sampled", sa.Boolean, nullable=False, default=False),
    sa.Column("audit_of", sa.String(64), nullable=True),
    sa.Column("inference_id", sa.String(128), nullable=True),
    sa.Column("inference_status", sa.String(16), nullable=False),
    sa.Column("exam_quality", sa.JSON, nullable=True),
    sa.Column("ai_findings", sa.JSON, nullable=False),
    sa.Column("ai_models", sa.JSON, nullable=False),
    sa.Column("report_id", sa.String(64), nullable=True),
    sa.Column("signed_at", UtcDateTime, nullable=True),
    # One primary read per exam: redelivered or re-published AI results cannot add a second.
    sa.UniqueConstraint("study_uid", "kind", name="uq_reads_study_kind"),
    sa.Index("ix_reads_worklist_state", "worklist", "state"),
    sa.Index("ix_reads_assigned_state", "assigned_to", "state"),
)

read_history = history_table(
    metadata,
    "read_history",
    "read_id",
    64,
    sa.Column("worklist", sa.String(128), nullable=False),
    sa.Column("assigned_to", sa.String(128), nullable=True),
    sa.Column("detail", sa.Text, nullable=False, default=""),
)

timers = sa.Table(
    "timers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(128), nullable=False),
    sa.Column("fire_at", UtcDateTime, nullable=False),
    sa.Column("fired_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # A deadline is armed once per subject, kind and instant, whatever re-arms it.
    sa.UniqueConstraint("subject", "kind", "fire_at", name="uq_timers_subject_kind_at"),
    sa.Index("ix_timers_due", "fired_at", "fire_at"),
)

shifts = sa.Table(
    "shifts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("worklist", sa.String(128), nullable=False, index=True),
    sa.Column("user", sa.String(128), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("institution", sa.String(128), nullable=True),
    sa.Column("starts_at", UtcDateTime, nullable=False),
    sa.Column("ends_at", UtcDateTime, nullable=False),
)

drafts = sa.Table(
    "drafts",
    metadata,
    sa.Column("read_id", sa.String(64), primary_key=True),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("findings_text", sa.Text, nullable=False),
    sa.Column("conclusion", sa.Text, nullable=False),
    sa.Column("findings", sa.JSON, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
)

ai_verdicts = sa.Table(
    "ai_verdicts",
    metadata,
    sa.Column("read_id", sa.String(64), primary_key=True),
    sa.Column("finding_code", sa.String(128), primary_key=True),
    sa.Column("model_name", sa.String(128), primary_key=True),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("comment", sa.Text, nullable=False, default=""),
    sa.Column("decided_by", sa.String(128), nullable=False),
    sa.Column("decided_at", UtcDateTime, nullable=False),
)

quality_labels = sa.Table(
    "quality_labels",
    metadata,
    sa.Column("read_id", sa.String(64), primary_key=True),
    sa.Column("sop_instance_uid", sa.String(128), primary_key=True),
    sa.Column("series_instance_uid", sa.String(128), nullable=False),
    sa.Column("label", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False, default=""),
    sa.Column("labelled_by", sa.String(128), nullable=False),
    sa.Column("labelled_role", sa.String(32), nullable=False),
    sa.Column("labelled_at", UtcDateTime, nullable=False),
)

report_versions = sa.Table(
    "report_versions",
    metadata,
    sa.Column("report_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("read_id", sa.String(64), nullable=False, index=True),
    sa.Column("study_uid", sa.String(128), nullable=False),
    sa.Column("institution", sa.String(128), nullable=False),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("findings_text", sa.Text, nullable=False),
    sa.Column("conclusion", sa.Text, nullable=False),
    sa.Column("findings", sa.JSON, nullable=False),
    sa.Column("ai_agreement", sa.JSON, nullable=False),
    sa.Column("signed_by", sa.String(128), nullable=False),
    sa.Column("signed_at", UtcDateTime, nullable=False),
    sa.Column("amended_from_version", sa.Integer, nullable=False, default=0),
    sa.Column("amend_reason", sa.Text, nullable=False, default=""),
    sa.Column("pdf_key", sa.String(255), nullable=False),
    sa.Column("json_key", sa.String(255), nullable=False),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("alert_id", sa.String(64), primary_key=True),
    sa.Column("report_id", sa.String(64), nullable=False),
    sa.Column("report_version", sa.Integer, nullable=False),
    sa.Column("read_id", sa.String(64), nullable=False),
    sa.Column("study_uid", sa.String(128), nullable=False),
    sa.Column("institution", sa.String(128), nullable=False, index=True),
    sa.Column("matched_terms", sa.JSON, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("raised_at", UtcDateTime, nullable=False),
    sa.Column("acknowledged_by", sa.String(128), nullable=True),
    sa.Column("acknowledged_at", UtcDateTime, nullable=True),
    sa.Column("closed_by", sa.String(128), nullable=True),
    sa.Column("closed_at", UtcDateTime, nullable=True),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.UniqueConstraint("report_id", "report_version", name="uq_alerts_report_version"),
)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("recipient_user", sa.String(128), nullable=True, index=True),
    sa.Column("recipient_role", sa.String(32), nullable=True),
    sa.Column("recipient_institution", sa.String(128), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("target", sa.String(1024), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("delivery_id", sa.String(64), nullable=False, unique=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("delivered_at", UtcDateTime, nullable=True),
    sa.Column("gave_up_at", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=False, default=""),
    sa.Index("ix_deliveries_pending", "delivered_at", "gave_up_at", "next_attempt_at"),
)

audit_log = audit_table(metadata)

idempotency_keys = idempotency_table(metadata)
