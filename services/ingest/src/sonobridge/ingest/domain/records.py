"""The aggregates ingest keeps: exams, indexed instances, upload sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sonobridge.ingest.domain.model import Scope


def object_key(study: str, series: str, sop: str) -> str:
    """Return the write-once object key of an instance."""
    return f"dicom/{study}/{series}/{sop}.dcm"


def spacing_text(spacing: tuple[float, float] | None) -> str | None:
    """Return an app-sent calibration as stored and sent on (`row\\col` mm), None without one."""
    return "\\".join(f"{v:g}" for v in spacing) if spacing else None


@dataclass(frozen=True)
class Exam:
    """An exam the app opened, with its manifest digest once completion was asked for."""

    exam_id: str
    study_instance_uid: str | None
    institution_id: str
    consortium_id: str
    operator_id: str
    device_serial: str
    exam_type: str
    patient_ref: str
    state: str
    request_sha256: str
    created_by: str
    created_at: datetime
    completed_at: datetime | None = None
    manifest_sha256: str | None = None
    scan_started_at: datetime | None = None
    scan_completed_at: datetime | None = None
    scan_seconds: float | None = None

    @property
    def scope(self) -> Scope:
        """Return the institution and consortium the exam's data belongs to."""
        return Scope(self.institution_id, self.consortium_id)


@dataclass(frozen=True)
class Instance:
    """One SOP instance in the index: "pending" while its object is written, then "stored"."""

    sop_instance_uid: str
    status: str
    claimed_at: datetime
    study_instance_uid: str
    series_instance_uid: str
    sop_class_uid: str
    exam_id: str | None
    object_key: str
    sha256: str
    size_bytes: int
    transfer_syntax_uid: str
    number_of_frames: int
    rows: int
    columns: int
    modality: str
    body_part: str
    patient_id: str
    patient_name: str
    study_date: str
    study_time: str
    accession_number: str
    study_description: str
    study_id: str
    series_number: int | None
    series_description: str
    instance_number: int | None
    device_serial: str
    operator_id: str
    institution_id: str
    consortium_id: str
    received_via: str
    stored_at: datetime | None
    metadata_json: str
    app_pixel_spacing: str | None = None
    app_gestational_age_weeks: float | None = None


@dataclass(frozen=True)
class UploadSession:
    """A tus upload of one instance into an exam, with its append-lock generation."""

    session_id: str
    exam_id: str
    owner: str
    upload_length: int
    upload_offset: int
    upload_metadata: str
    status: str
    parts: int
    interrupted: bool
    created_at: datetime
    expires_at: datetime
    sop_instance_uid: str | None = None
