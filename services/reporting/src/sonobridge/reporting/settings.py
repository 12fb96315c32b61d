"""Reporting settings: shared sections plus policy, webhooks, FHIR and follow-up terms."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator

from sonobridge.common.settings import ServiceSettings


class FollowupTerm(BaseModel):
    """A follow-up concept: the words (any language) and finding codes that trigger an alert."""

    term: str
    words: list[str] = Field(default_factory=list)
    codes: list[str] = Field(default_factory=list)


DEFAULT_FOLLOWUP_TERMS = [
    FollowupTerm(term="nodule", words=["结节", "nodule", "nodules"], codes=["237495005"]),
    # SNOMED CT 4147007 |Mass|: the inference service's code for a solid focal lesion outside
    # the thyroid (a thyroid one is 237495005 |Thyroid nodule|).
    FollowupTerm(
        term="tumour", words=["肿瘤", "肿物", "占位", "tumour", "tumor", "mass"], codes=["4147007"]
    ),
    FollowupTerm(term="cancer", words=["癌", "恶性", "cancer", "carcinoma", "malignant"]),
]


class ReadingSettings(BaseModel):
    """The reading station's login and links (`REPORTING__READING__*`)."""

    # OIDC issuer people log in at (standard discovery below it); empty: the pages stay off.
    issuer_url: str = ""
    client_id: str = "reading-station"
    # The station's external base URL (the redirect URI is built on it); empty: the request's.
    public_url: str = ""
    # The OHIF viewer's base URL; exams open at `<viewer_url>/viewer?StudyInstanceUIDs=`.
    viewer_url: str = ""
    session_hours: float = Field(8.0, gt=0)
    # Behind TLS the session cookie must only travel over it.
    secure_cookies: bool = False


class ReportingSettings(BaseModel):
    """The reporting section (`REPORTING__*`)."""

    policy_path: Path | None = None
    consumer_group: str = "sonobridge-reporting"
    webhook_urls: list[str] = Field(default_factory=list)
    webhook_secret: SecretStr | None = None
    webhook_max_attempts: int = Field(8, ge=1)
    webhook_backoff_seconds: float = Field(5.0, ge=0)
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    fhir_endpoint: str = ""
    followup_terms: list[FollowupTerm] = Field(default_factory=lambda: list(DEFAULT_FOLLOWUP_TERMS))
    timer_interval_seconds: float = Field(1.0, gt=0)
    delivery_interval_seconds: float = Field(1.0, gt=0)
    # Base URL of ingest's DICOMweb service; frame links in the exam view are built from it.
    wado_base_url: str = "/dicomweb"
    sse_max_seconds: float = Field(25.0, gt=0)
    # A TrueType CJK font to embed in PDFs; unset: an installed one, else the STSong-Light CID font.
    pdf_font_path: Path | None = None
    reading: ReadingSettings = ReadingSettings()

    @model_validator(mode="after")
    def _webhooks_need_secret(self) -> ReportingSettings:
        if self.webhook_urls and self.webhook_secret is None:
            raise ValueError("REPORTING__WEBHOOK_SECRET is required when webhook URLs are set")
        return self


class Settings(ServiceSettings):
    """Settings of the reporting service."""

    reporting: ReportingSettings = ReportingSettings()
