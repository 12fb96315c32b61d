"""What the reporting service keeps: exams, reads, drafts, verdicts, reports, alerts, deliveries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sonobridge.common import history
from sonobridge.reporting.domain.policy import PRIORITY_RANK, Priority, Route
from sonobridge.reporting.domain.reads import Read, ReadState

JsonObject = dict[str, Any]
"""A JSON object kept as sent (an AI finding, a DICOM instance summary, an exam quality)."""

ReadPosition = tuple[int, datetime, str]
"""Where a read sits in worklist order: priority rank, due time (or NEVER_DUE), read id."""

# Reads without a due time sort after every dated one.
NEVER_DUE = datetime(9999, 12, 31, tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    """Return a UTC ISO 8601 string, or None."""
    return value.astimezone(UTC).isoformat() if value else None


@dataclass(frozen=True)
class Exam:
    """An exam as ExamCompleted described it."""

    study_uid: str
    exam_id: str
    institution: str
    operator: str
    device_serial: str
    exam_type: str
    patient_ref: str
    completed_at: datetime | None
    received_at: datetime
    instances: list[JsonObject] = field(default_factory=list)


@dataclass(frozen=True)
class ReadRecord:
    """A read with its exam context, AI result, routing decision and outcome."""

    read_id: str
    study_uid: str
    kind: str
    exam_id: str
    institution: str
    operator: str
    device_serial: str
    exam_type: str
    patient_ref: str
    route: str
    worklist: str
    priority: str
    state: str
    assigned_to: str | None
    created_at: datetime
    due_at: datetime | None
    first_due_at: datetime | None
    exam_completed_at: datetime | None
    escalation_level: int
    policy_version: str
    rule: str
    reason: str
    audit_sampled: bool
    inference_status: str
    ai_findings: list[JsonObject]
    ai_models: list[JsonObject]
    audit_of: str | None = None
    inference_id: str | None = None
    exam_quality: JsonObject | None = None
    report_id: str | None = None
    signed_at: datetime | None = None

    def lifecycle(self) -> Read:
        """Return the parts the read's state machine works on."""
        return Read(
            read_id=self.read_id,
            study_uid=self.study_uid,
            institution=self.institution,
            route=Route(self.route),
            worklist=self.worklist,
            priority=Priority(self.priority),
            state=ReadState(self.state),
            assigned_to=self.assigned_to,
            due_at=self.due_at,
            escalation_level=self.escalation_level,
        )

    def position(self) -> ReadPosition:
        """Return the read's place in worklist order (what a cursor remembers)."""
        return PRIORITY_RANK[Priority(self.priority)], self.due_at or NEVER_DUE, self.read_id


@dataclass(frozen=True, kw_only=True)
class HistoryEntry(history.HistoryEntry):
    """One step in a read's history."""

    worklist: str
    assigned_to: str | None
    detail: str = ""


@dataclass(frozen=True)
class Timer:
    """A durable timer on a study (inference wait) or a read (targets)."""

    id: int
    kind: str
    subject: str
    fire_at: datetime


@dataclass(frozen=True)
class Draft:
    """A reader's unsigned report text."""

    read_id: str
    language: str
    title: str
    findings_text: str
    conclusion: str
    findings: list[JsonObject]
    updated_by: str
    updated_at: datetime
    revision: int


@dataclass(frozen=True)
class Verdict:
    """A reader's agree/modify/reject on one AI finding, against the model version."""

    read_id: str
    finding_code: str
    model_name: str
    model_version: str
    verdict: str
    comment: str
    decided_by: str
    decided_at: datetime

    def agreement(self) -> JsonObject:
        """Return what a signed report keeps of the verdict (the AI agreement it records)."""
        return {
            "finding_code": self.finding_code,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "verdict": self.verdict,
            "comment": self.comment,
        }


# Mirrors inference's quality reasons (the QualityReason of the event contract).
QUALITY_REASONS = (
    "low_gain",
    "lost_contact",
    "dead_elements",
    "motion_blur",
    "wrong_depth",
    "other",
)
QUALITY_LABELS = ("acceptable", "rescan")


@dataclass(frozen=True)
class QualityLabel:
    """An expert's quality label of one instance of a read's exam."""

    read_id: str
    sop_instance_uid: str
    series_instance_uid: str
    # "acceptable" or "rescan"; a rescan names the fault the expert saw.
    label: str
    reason: str
    labelled_by: str
    labelled_role: str
    labelled_at: datetime


@dataclass(frozen=True)
class ReportVersion:
    """One signed version of a report; versions never change once signed."""

    report_id: str
    version: int
    read_id: str
    study_uid: str
    institution: str
    language: str
    title: str
    findings_text: str
    conclusion: str
    findings: list[JsonObject]
    ai_agreement: list[JsonObject]
    signed_by: str
    signed_at: datetime
    amended_from_version: int
    amend_reason: str
    pdf_key: str
    json_key: str


@dataclass(frozen=True)
class Alert:
    """A follow-up alert raised by terms in a signed report."""

    alert_id: str
    report_id: str
    report_version: int
    read_id: str
    study_uid: str
    institution: str
    matched_terms: list[str]
    state: str
    raised_at: datetime
    note: str = ""
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True)
class Notification:
    """A message in a user's feed."""

    id: int
    kind: str
    at: datetime
    payload: JsonObject


@dataclass(frozen=True)
class Delivery:
    """An outbound webhook or FHIR POST and its attempts."""

    channel: str
    target: str
    event_type: str
    delivery_id: str
    body: str
    next_attempt_at: datetime
    attempts: int = 0
    last_error: str = ""
    id: int = 0
