"""Tables of the inference service, on one MetaData (the migrations create them)."""

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
from sonobridge.common.sql_records import audit_table

metadata = MetaData()


# One row per exam, manifest and set of model versions: a redelivered or re-published
# ExamCompleted for the same exam and models hits the unique key instead of a second result.
inference_results = Table(
    "inference_results",
    metadata,
    Column("inference_id", String(64), primary_key=True),
    Column("study_instance_uid", String(128), nullable=False, index=True),
    Column("manifest_sha256", String(64), nullable=False),
    Column("model_versions", String(512), nullable=False),
    Column("exam_id", String(64), nullable=False, default=""),
    Column("exam_type", String(32), nullable=False, default=""),
    Column("institution_id", String(128), nullable=False, default=""),
    Column("device_serial", String(128), nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("exam_acceptable", String(8), nullable=False),
    Column("summary", JSON, nullable=False),
    Column("derived_object_keys", JSON, nullable=False),
    Column("error_message", Text, nullable=False, default=""),
    Column("source_event_id", String(64), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime, nullable=False),
    UniqueConstraint(
        "study_instance_uid", "manifest_sha256", "model_versions", name="uq_inference_result"
    ),
)

outbox, inbox = delivery_tables(metadata)

# The state of a gating model per device model; a device model without a row has its card's
# default (shadow unless the card's own evaluation covers it).
device_validations = Table(
    "device_validations",
    metadata,
    Column("model_name", String(64), primary_key=True),
    Column("manufacturer", String(128), primary_key=True),
    Column("device_model_name", String(128), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("model_version", String(32), nullable=False, default=""),
    Column("changed_at", UtcDateTime, nullable=False),
    Column("changed_by", String(255), nullable=False),
    Column("reason", Text, nullable=False, default=""),
)

# Experts' quality labels beside what the model said; the newest id ends a rolling window.
quality_labels = Table(
    "quality_labels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(64), nullable=False),
    Column("manufacturer", String(128), nullable=False),
    Column("device_model_name", String(128), nullable=False),
    Column("sop_instance_uid", String(128), nullable=False),
    Column("expert_fault", String(32), nullable=True),
    Column("model_flagged", Boolean, nullable=False),
    Column("labelled_by", String(255), nullable=False),
    Column("labelled_at", UtcDateTime, nullable=False),
    UniqueConstraint("model_name", "sop_instance_uid", name="uq_quality_label_instance"),
    Index("ix_quality_labels_window", "model_name", "manufacturer", "device_model_name", "id"),
)

# What each version of a gating model (serving and shadow) said of each instance, before any
# validation gate: joined to quality_labels for the shadow-vs-serving comparison, never shown.
quality_verdicts = Table(
    "quality_verdicts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(64), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("study_instance_uid", String(128), nullable=False),
    Column("sop_instance_uid", String(128), nullable=False),
    Column("manufacturer", String(128), nullable=False),
    Column("device_model_name", String(128), nullable=False),
    Column("flagged", Boolean, nullable=False),
    Column("reason", String(32), nullable=True),
    Column("recorded_at", UtcDateTime, nullable=False),
    UniqueConstraint(
        "model_name", "model_version", "sop_instance_uid", name="uq_quality_verdict_instance"
    ),
    Index("ix_quality_verdicts_instance", "sop_instance_uid"),
)

audit_log = audit_table(metadata)
