"""Tables of the inference service, on one MetaData (the migrations create them)."""

from __future__ import annotations

import sqlalchemy as sa

from sonobridge.common.db import UtcDateTime
from sonobridge.common.delivery import delivery_tables
from sonobridge.common.sql_records import audit_table

metadata = sa.MetaData()


# One row per exam, manifest and set of model versions: a redelivered or re-published
# ExamCompleted for the same exam and models hits the unique key instead of a second result.
inference_results = sa.Table(
    "inference_results",
    metadata,
    sa.Column("inference_id", sa.String(64), primary_key=True),
    sa.Column("study_instance_uid", sa.String(128), nullable=False, index=True),
    sa.Column("manifest_sha256", sa.String(64), nullable=False),
    sa.Column("model_versions", sa.String(512), nullable=False),
    sa.Column("exam_id", sa.String(64), nullable=False, default=""),
    sa.Column("exam_type", sa.String(32), nullable=False, default=""),
    sa.Column("institution_id", sa.String(128), nullable=False, default=""),
    sa.Column("device_serial", sa.String(128), nullable=False, default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("exam_acceptable", sa.String(8), nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
    sa.Column("derived_object_keys", sa.JSON, nullable=False),
    sa.Column("error_message", sa.Text, nullable=False, default=""),
    sa.Column("source_event_id", sa.String(64), nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("completed_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint(
        "study_instance_uid", "manifest_sha256", "model_versions", name="uq_inference_result"
    ),
)

outbox, inbox = delivery_tables(metadata)

# The state of a gating model per device model; a device model without a row has its card's
# default (shadow unless the card's own evaluation covers it).
device_validations = sa.Table(
    "device_validations",
    metadata,
    sa.Column("model_name", sa.String(64), primary_key=True),
    sa.Column("manufacturer", sa.String(128), primary_key=True),
    sa.Column("device_model_name", sa.String(128), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False, default=""),
    sa.Column("changed_at", UtcDateTime, nullable=False),
    sa.Column("changed_by", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
)

# Experts' quality labels beside what the model said; the newest id ends a rolling window.
quality_labels = sa.Table(
    "quality_labels",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(64), nullable=False),
    sa.Column("manufacturer", sa.String(128), nullable=False),
    sa.Column("device_model_name", sa.String(128), nullable=False),
    sa.Column("sop_instance_uid", sa.String(128), nullable=False),
    sa.Column("expert_fault", sa.String(32), nullable=True),
    sa.Column("model_flagged", sa.Boolean, nullable=False),
    sa.Column("labelled_by", sa.String(255), nullable=False),
    sa.Column("labelled_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("model_name", "sop_instance_uid", name="uq_quality_label_instance"),
    sa.Index("ix_quality_labels_window", "model_name", "manufacturer", "device_model_name", "id"),
)

# What each version of a gating model (serving and shadow) said of each instance, before any
# validation gate: joined to quality_labels for the shadow-vs-serving comparison, never shown.
quality_verdicts = sa.Table(
    "quality_verdicts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(64), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("study_instance_uid", sa.String(128), nullable=False),
    sa.Column("sop_instance_uid", sa.String(128), nullable=False),
    sa.Column("manufacturer", sa.String(128), nullable=False),
    sa.Column("device_model_name", sa.String(128), nullable=False),
    sa.Column("flagged", sa.Boolean, nullable=False),
    sa.Column("reason", sa.String(32), nullable=True),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint(
        "model_name", "model_version", "sop_instance_uid", name="uq_quality_verdict_instance"
    ),
    sa.Index("ix_quality_verdicts_instance", "sop_instance_uid"),
)

audit_log = audit_table(metadata)
