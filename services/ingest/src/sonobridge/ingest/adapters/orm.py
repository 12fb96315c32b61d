"""Ingest's tables on one MetaData: exams, instances, uploads, audit, DIMSE callers, outbox."""

from __future__ import annotations

import sqlalchemy as sa

from sonobridge.common.audit import OUTCOME_CHARS
from sonobridge.common.db import UtcDateTime
from sonobridge.common.delivery import delivery_tables
from sonobridge.common.sql_records import audit_table, idempotency_table

metadata = sa.MetaData()

exams = sa.Table(
    "exams",
    metadata,
    sa.Column("exam_id", sa.String(36), primary_key=True),
    sa.Column("study_instance_uid", sa.String(64), nullable=True, unique=True),
    sa.Column("institution_id", sa.String(128), nullable=False, index=True),
    sa.Column("consortium_id", sa.String(128), nullable=False, index=True),
    sa.Column("operator_id", sa.String(255), nullable=False),
    sa.Column("device_serial", sa.String(128), nullable=False),
    sa.Column("exam_type", sa.String(32), nullable=False),
    sa.Column("patient_ref", sa.String(255), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    # Hash of the creating request's body: a repeat with other values is a conflict.
    sa.Column("request_sha256", sa.String(64), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("completed_at", UtcDateTime, nullable=True),
    sa.Column("manifest_sha256", sa.String(64), nullable=True),
    sa.Column("scan_started_at", UtcDateTime, nullable=True),
    sa.Column("scan_completed_at", UtcDateTime, nullable=True),
    sa.Column("scan_seconds", sa.Float, nullable=True),
)

manifest_items = sa.Table(
    "manifest_items",
    metadata,
    sa.Column("exam_id", sa.String(36), primary_key=True),
    sa.Column("sop_instance_uid", sa.String(64), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
)

instances = sa.Table(
    "instances",
    metadata,
    sa.Column("sop_instance_uid", sa.String(64), primary_key=True),
    # "pending" while the object is being written, "stored" once indexed and announced.
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("claimed_at", UtcDateTime, nullable=False),
    sa.Column("study_instance_uid", sa.String(64), nullable=False),
    sa.Column("series_instance_uid", sa.String(64), nullable=False, index=True),
    sa.Column("sop_class_uid", sa.String(64), nullable=False),
    sa.Column("exam_id", sa.String(36), nullable=True, index=True),
    sa.Column("object_key", sa.String(255), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("transfer_syntax_uid", sa.String(64), nullable=False),
    sa.Column("number_of_frames", sa.Integer, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("columns", sa.Integer, nullable=False),
    sa.Column("modality", sa.String(16), nullable=False),
    sa.Column("body_part", sa.String(64), nullable=False),
    sa.Column("patient_id", sa.String(64), nullable=False, index=True),
    sa.Column("patient_name", sa.String(324), nullable=False),
    sa.Column("study_date", sa.String(8), nullable=False),
    sa.Column("study_time", sa.String(32), nullable=False),
    sa.Column("accession_number", sa.String(64), nullable=False),
    sa.Column("study_description", sa.String(255), nullable=False),
    sa.Column("study_id", sa.String(32), nullable=False),
    sa.Column("series_number", sa.Integer, nullable=True),
    sa.Column("series_description", sa.String(255), nullable=False),
    sa.Column("instance_number", sa.Integer, nullable=True),
    sa.Column("device_serial", sa.String(128), nullable=False),
    sa.Column("operator_id", sa.String(255), nullable=False),
    sa.Column("institution_id", sa.String(128), nullable=False, index=True),
    sa.Column("consortium_id", sa.String(128), nullable=False, index=True),
    sa.Column("received_via", sa.String(16), nullable=False),
    sa.Column("stored_at", UtcDateTime, nullable=True),
    sa.Column("metadata_json", sa.Text, nullable=False),
    # Calibration the app sent with the upload ("row\\col" mm), for DICOM that carries none.
    sa.Column("app_pixel_spacing", sa.String(64), nullable=True),
    sa.Column("app_gestational_age_weeks", sa.Float, nullable=True),
)
sa.Index(
    "ix_instances_study_series", instances.c.study_instance_uid, instances.c.series_instance_uid
)
# The ownership check steps through a study's owner scopes on this index
# (see owners_and_exam_of_study).
sa.Index(
    "ix_instances_study_owner",
    instances.c.study_instance_uid,
    instances.c.institution_id,
    instances.c.consortium_id,
)

upload_sessions = sa.Table(
    "upload_sessions",
    metadata,
    sa.Column("session_id", sa.String(36), primary_key=True),
    sa.Column("exam_id", sa.String(36), nullable=False, index=True),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("upload_length", sa.BigInteger, nullable=False),
    sa.Column("upload_offset", sa.BigInteger, nullable=False),
    sa.Column("upload_metadata", sa.Text, nullable=False),
    # "open", "appending" (one request holds the append lock), "stored" or "rejected"
    sa.Column("status", sa.String(16), nullable=False),
    # Append-lock generation: each lock taken adds one; part keys carry it, so a request only
    # ever deletes its own part and the committed part at an offset is the newest one there.
    sa.Column("parts", sa.Integer, nullable=False),
    sa.Column("interrupted", sa.Boolean, nullable=False),
    sa.Column("sop_instance_uid", sa.String(64), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False, index=True),
)

# Exam-opening Idempotency-Keys, on the schema every service shares.
idempotency_keys = idempotency_table(metadata)

# The common audit record's table; outcomes longer than the column are clipped on insert.
AUDIT_OUTCOME_CHARS = OUTCOME_CHARS
audit_log = audit_table(metadata)

# Calling AE titles allowed to push by DIMSE, each mapped to the institution its data belongs to.
dimse_callers = sa.Table(
    "dimse_callers",
    metadata,
    sa.Column("ae_title", sa.String(16), primary_key=True),
    sa.Column("institution_id", sa.String(128), nullable=False, index=True),
    sa.Column("description", sa.String(255), nullable=False),
    sa.Column("updated_by", sa.String(255), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

outbox, inbox = delivery_tables(metadata)
