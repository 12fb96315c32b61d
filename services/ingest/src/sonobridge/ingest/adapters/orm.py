"""Ingest's tables on one MetaData: exams, instances, uploads, audit, DIMSE callers, outbox."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from sonobridge.common.audit import OUTCOME_CHARS
from sonobridge.common.db import UtcDateTime
from sonobridge.common.delivery import delivery_tables
from sonobridge.common.sql_records import audit_table, idempotency_table

metadata = MetaData()

exams = Table(
    "exams",
    metadata,
    Column("exam_id", String(36), primary_key=True),
    Column("study_instance_uid", String(64), nullable=True, unique=True),
    Column("institution_id", String(128), nullable=False, index=True),
    Column("consortium_id", String(128), nullable=False, index=True),
    Column("operator_id", String(255), nullable=False),
    Column("device_serial", String(128), nullable=False),
    Column("exam_type", String(32), nullable=False),
    Column("patient_ref", String(255), nullable=False),
    Column("state", String(32), nullable=False),
    # Hash of the creating request's body: a repeat with other values is a conflict.
    Column("request_sha256", String(64), nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime, nullable=True),
    Column("manifest_sha256", String(64), nullable=True),
    Column("scan_started_at", UtcDateTime, nullable=True),
    Column("scan_completed_at", UtcDateTime, nullable=True),
    Column("scan_seconds", Float, nullable=True),
)

manifest_items = Table(
    "manifest_items",
    metadata,
    Column("exam_id", String(36), primary_key=True),
    Column("sop_instance_uid", String(64), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("position", Integer, nullable=False),
)

instances = Table(
    "instances",
    metadata,
    Column("sop_instance_uid", String(64), primary_key=True),
    # "pending" while the object is being written, "stored" once indexed and announced.
    Column("status", String(16), nullable=False),
    Column("claimed_at", UtcDateTime, nullable=False),
    Column("study_instance_uid", String(64), nullable=False),
    Column("series_instance_uid", String(64), nullable=False, index=True),
    Column("sop_class_uid", String(64), nullable=False),
    Column("exam_id", String(36), nullable=True, index=True),
    Column("object_key", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("transfer_syntax_uid", String(64), nullable=False),
    Column("number_of_frames", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("columns", Integer, nullable=False),
    Column("modality", String(16), nullable=False),
    Column("body_part", String(64), nullable=False),
    Column("patient_id", String(64), nullable=False, index=True),
    Column("patient_name", String(324), nullable=False),
    Column("study_date", String(8), nullable=False),
    Column("study_time", String(32), nullable=False),
    Column("accession_number", String(64), nullable=False),
    Column("study_description", String(255), nullable=False),
    Column("study_id", String(32), nullable=False),
    Column("series_number", Integer, nullable=True),
    Column("series_description", String(255), nullable=False),
    Column("instance_number", Integer, nullable=True),
    Column("device_serial", String(128), nullable=False),
    Column("operator_id", String(255), nullable=False),
    Column("institution_id", String(128), nullable=False, index=True),
    Column("consortium_id", String(128), nullable=False, index=True),
    Column("received_via", String(16), nullable=False),
    Column("stored_at", UtcDateTime, nullable=True),
    Column("metadata_json", Text, nullable=False),
    # Calibration the app sent with the upload ("row\\col" mm), for DICOM that carries none.
    Column("app_pixel_spacing", String(64), nullable=True),
    Column("app_gestational_age_weeks", Float, nullable=True),
)
Index("ix_instances_study_series", instances.c.study_instance_uid, instances.c.series_instance_uid)
# The ownership check steps through a study's owner scopes on this index (see owners_and_exam_of_study).
Index(
    "ix_instances_study_owner",
    instances.c.study_instance_uid,
    instances.c.institution_id,
    instances.c.consortium_id,
)

upload_sessions = Table(
    "upload_sessions",
    metadata,
    Column("session_id", String(36), primary_key=True),
    Column("exam_id", String(36), nullable=False, index=True),
    Column("owner", String(255), nullable=False),
    Column("upload_length", BigInteger, nullable=False),
    Column("upload_offset", BigInteger, nullable=False),
    Column("upload_metadata", Text, nullable=False),
    # "open", "appending" (one request holds the append lock), "stored" or "rejected"
    Column("status", String(16), nullable=False),
    # Append-lock generation: each lock taken adds one; part keys carry it, so a request only
    # ever deletes its own part and the committed part at an offset is the newest one there.
    Column("parts", Integer, nullable=False),
    Column("interrupted", Boolean, nullable=False),
    Column("sop_instance_uid", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)

# Exam-opening Idempotency-Keys, on the schema every service shares.
idempotency_keys = idempotency_table(metadata)

# The common audit record's table; outcomes longer than the column are clipped on insert.
AUDIT_OUTCOME_CHARS = OUTCOME_CHARS
audit_log = audit_table(metadata)

# Calling AE titles allowed to push by DIMSE, each mapped to the institution its data belongs to.
dimse_callers = Table(
    "dimse_callers",
    metadata,
    Column("ae_title", String(16), primary_key=True),
    Column("institution_id", String(128), nullable=False, index=True),
    Column("description", String(255), nullable=False),
    Column("updated_by", String(255), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

outbox, inbox = delivery_tables(metadata)
