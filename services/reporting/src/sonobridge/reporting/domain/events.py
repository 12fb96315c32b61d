"""The events reporting consumes and publishes, in domain terms (adapters map them to protobuf)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from sonobridge.reporting.domain.records import Exam, JsonObject, ReadRecord


@dataclass(frozen=True)
class ExamContext:
    """Which exam an event is about."""

    exam_id: str
    study_uid: str
    institution: str
    operator: str
    device_serial: str
    exam_type: str
    patient_ref: str

    @classmethod
    def of(cls, record: Exam | ReadRecord) -> ExamContext:
        """Return the context a stored exam or read carries under the same field names."""
        return cls(**{f.name: getattr(record, f.name) for f in fields(cls)})

    def fields(self) -> dict[str, Any]:
        """Return the fields by name, for the records (Exam, ReadRecord) that keep them flat."""
        return asdict(self)


@dataclass(frozen=True)
class ExamCompleted:
    """Ingest finished an exam."""

    context: ExamContext
    completed_at: datetime | None
    instances: list[JsonObject] = field(default_factory=list)


@dataclass(frozen=True)
class InferenceCompleted:
    """Inference answered for an exam."""

    context: ExamContext
    inference_id: str | None
    status: str
    quality: JsonObject | None
    findings: list[JsonObject] = field(default_factory=list)
    models: list[JsonObject] = field(default_factory=list)


@dataclass(frozen=True)
class TicketOpened:
    """Maintenance opened a ticket on a device."""

    device_serial: str
    ticket_id: str
    symptom: str
    opened_at: datetime | None


@dataclass(frozen=True)
class ReadRouted:
    """A read was routed (or re-routed by escalation) to a worklist."""

    context: ExamContext
    read_id: str
    route: str
    worklist: str
    priority: str
    assigned_to: str | None
    policy_version: str
    reason: str
    routed_at: datetime
    due_at: datetime | None


@dataclass(frozen=True)
class ReportSigned:
    """A report version was signed."""

    context: ExamContext
    read_id: str
    report_id: str
    version: int
    signed_by: str
    signed_at: datetime
    pdf_key: str
    json_key: str
    conclusion: str
    findings: list[JsonObject]
    ai_agreement: list[JsonObject]
    amended_from_version: int


@dataclass(frozen=True)
class FollowupAlerted:
    """Terms in a signed report need a coordinator's follow-up."""

    context: ExamContext
    alert_id: str
    report_id: str
    report_version: int
    matched_terms: list[str]
    raised_at: datetime


@dataclass(frozen=True)
class QualityLabelled:
    """An expert labelled one instance's quality; carries no patient data."""

    exam_id: str
    study_uid: str
    read_id: str
    series_uid: str
    sop_uid: str
    device_manufacturer: str
    device_model_name: str
    label: str
    reason: str
    labelled_role: str
    labelled_at: datetime


Published = ReadRouted | ReportSigned | FollowupAlerted | QualityLabelled
Consumed = ExamCompleted | InferenceCompleted | TicketOpened
