"""Request bodies of the REST API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from sonobridge.common.inputs import Int64, PlausibleDatetime


class DraftRequest(BaseModel):
    """Start a draft in a language."""

    language: Literal["zh", "en"] = "zh"


class DraftEdit(BaseModel):
    """Fields of a draft to change; absent fields stay."""

    title: str | None = None
    findings_text: str | None = None
    conclusion: str | None = None
    findings: list[dict[str, Any]] | None = None
    revision: Int64 | None = Field(None, description="revision the edit is based on")


class Verdict(BaseModel):
    """The reader's verdict on one AI finding."""

    finding_code: str = Field(min_length=1)
    model_name: str | None = None
    verdict: Literal["agree", "modify", "reject"]
    comment: str = ""


class VerdictsRequest(BaseModel):
    """Verdicts on AI findings."""

    verdicts: list[Verdict] = Field(min_length=1)


class QualityLabelBody(BaseModel):
    """The expert's quality label of one instance of the read's exam."""

    sop_instance_uid: str = Field(min_length=1, max_length=128)
    label: Literal["acceptable", "rescan"]
    reason: str | None = Field(None, max_length=32, description="the fault seen, for rescan")


class QualityLabelsRequest(BaseModel):
    """Quality labels of the read's instances."""

    labels: list[QualityLabelBody] = Field(min_length=1, max_length=1000)


class ReassignRequest(BaseModel):
    """Who should take the read."""

    to_user: str = Field(min_length=1)


class AmendRequest(BaseModel):
    """A new version's changes and the reason."""

    reason: str = Field(min_length=1)
    conclusion: str | None = None
    findings_text: str | None = None
    findings: list[dict[str, Any]] | None = None


class AlertAction(BaseModel):
    """An optional note on an alert change."""

    note: str = ""


class ShiftIn(BaseModel):
    """One reader's duty on a worklist."""

    user: str = Field(min_length=1)
    role: Literal["primary", "backup"]
    starts_at: PlausibleDatetime
    ends_at: PlausibleDatetime
    institution: str | None = None


class RosterRequest(BaseModel):
    """A worklist's whole roster."""

    shifts: list[ShiftIn]
