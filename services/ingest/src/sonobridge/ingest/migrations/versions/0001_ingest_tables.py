"""Create the ingest tables: exams, manifests, instances, uploads, audit, outbox, inbox.

Create Date: 2026-11-22 09:35:58.920962
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
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("roles", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=255), nullable=False),
        sa.Column("institution_id", sa.String(length=128), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)

    op.create_table(
        "exams",
        sa.Column("exam_id", sa.String(length=36), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=True),
        sa.Column("institution_id", sa.String(length=128), nullable=False),
        sa.Column("consortium_id", sa.String(length=128), nullable=False),
        sa.Column("operator_id", sa.String(length=255), nullable=False),
        sa.Column("device_serial", sa.String(length=128), nullable=False),
        sa.Column("exam_type", sa.String(length=32), nullable=False),
        sa.Column("patient_ref", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=True),
        sa.Column("scan_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scan_completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scan_seconds", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("exam_id"),
        sa.UniqueConstraint("study_instance_uid"),
    )
    with op.batch_alter_table("exams", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exams_consortium_id"), ["consortium_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_exams_institution_id"), ["institution_id"], unique=False
        )

    op.create_table(
        "idempotency_keys",
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("exam_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", "key"),
    )
    create_delivery_tables()
    op.create_table(
        "instances",
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("series_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False),
        sa.Column("exam_id", sa.String(length=36), nullable=True),
        sa.Column("object_key", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("transfer_syntax_uid", sa.String(length=64), nullable=False),
        sa.Column("number_of_frames", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("columns", sa.Integer(), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("body_part", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("patient_name", sa.String(length=324), nullable=False),
        sa.Column("study_date", sa.String(length=8), nullable=False),
        sa.Column("study_time", sa.String(length=32), nullable=False),
        sa.Column("accession_number", sa.String(length=64), nullable=False),
        sa.Column("study_description", sa.String(length=255), nullable=False),
        sa.Column("study_id", sa.String(length=32), nullable=False),
        sa.Column("series_number", sa.Integer(), nullable=True),
        sa.Column("series_description", sa.String(length=255), nullable=False),
        sa.Column("instance_number", sa.Integer(), nullable=True),
        sa.Column("device_serial", sa.String(length=128), nullable=False),
        sa.Column("operator_id", sa.String(length=255), nullable=False),
        sa.Column("institution_id", sa.String(length=128), nullable=False),
        sa.Column("consortium_id", sa.String(length=128), nullable=False),
        sa.Column("received_via", sa.String(length=16), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("sop_instance_uid"),
    )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_instances_consortium_id"), ["consortium_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_instances_exam_id"), ["exam_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_instances_institution_id"), ["institution_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_instances_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_instances_series_instance_uid"), ["series_instance_uid"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_instances_study_instance_uid"), ["study_instance_uid"], unique=False
        )
        batch_op.create_index(
            "ix_instances_study_series", ["study_instance_uid", "series_instance_uid"], unique=False
        )

    op.create_table(
        "manifest_items",
        sa.Column("exam_id", sa.String(length=36), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("exam_id", "sop_instance_uid"),
    )

    op.create_table(
        "upload_sessions",
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("exam_id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("upload_length", sa.BigInteger(), nullable=False),
        sa.Column("upload_offset", sa.BigInteger(), nullable=False),
        sa.Column("upload_metadata", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("interrupted", sa.Boolean(), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )
    with op.batch_alter_table("upload_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_upload_sessions_exam_id"), ["exam_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_upload_sessions_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    """Revert this revision."""

    with op.batch_alter_table("upload_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upload_sessions_expires_at"))
        batch_op.drop_index(batch_op.f("ix_upload_sessions_exam_id"))

    op.drop_table("upload_sessions")

    drop_delivery_tables()
    op.drop_table("manifest_items")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index("ix_instances_study_series")
        batch_op.drop_index(batch_op.f("ix_instances_study_instance_uid"))
        batch_op.drop_index(batch_op.f("ix_instances_series_instance_uid"))
        batch_op.drop_index(batch_op.f("ix_instances_patient_id"))
        batch_op.drop_index(batch_op.f("ix_instances_institution_id"))
        batch_op.drop_index(batch_op.f("ix_instances_exam_id"))
        batch_op.drop_index(batch_op.f("ix_instances_consortium_id"))

    op.drop_table("instances")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("exams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exams_institution_id"))
        batch_op.drop_index(batch_op.f("ix_exams_consortium_id"))

    op.drop_table("exams")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))
        batch_op.drop_index(batch_op.f("ix_audit_log_actor"))

    op.drop_table("audit_log")
