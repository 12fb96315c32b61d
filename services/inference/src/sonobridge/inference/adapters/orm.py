"""Tables of the inference service, on one MetaData (the migrations create them)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from sonobridge.common.db import UtcDateTime
from sonobridge.common.delivery import delivery_tables

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
