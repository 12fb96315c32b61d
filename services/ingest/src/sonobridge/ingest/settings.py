"""Ingest settings: the shared sections plus DIMSE, upload and size limits."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from sonobridge.common.settings import ServiceSettings


class IngestSettings(BaseModel):
    """What only ingest needs: DICOM identity and timeouts, limits and upload expiry."""

    ae_title: str = Field("SONOBRIDGE", min_length=1, max_length=16)
    dimse_host: str = "127.0.0.1"
    dimse_port: int = Field(11112, ge=0, le=65535)
    dimse_enabled: bool = True
    # Associations served at once; garbage connections count until a timeout drops them.
    dimse_max_associations: int = Field(10, ge=1, le=1000)
    # Time a new connection has to send its A-ASSOCIATE-RQ (pynetdicom's ACSE timeout, which
    # also runs the ARTIM timer): silent or half-open sockets free their slot after this.
    dimse_artim_timeout_seconds: float = Field(2.0, gt=0, le=300)
    # A socket read that sees nothing for this long aborts the association (half-sent PDUs,
    # peers that went away, associations left idle between messages).
    dimse_network_timeout_seconds: float = Field(5.0, gt=0, le=3600)
    # How long a DIMSE exchange may wait for the peer's next message.
    dimse_dimse_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    # Consortium that DIMSE arrivals belong to; tokens carry it for the other paths. The
    # institution comes from the calling AE title's registration (/v1/admin/dimse-callers).
    consortium_id: str = "default"
    max_instance_bytes: int = Field(2 * 1024**3, gt=0)
    upload_expiry_seconds: int = Field(24 * 3600, gt=0)
    expiry_sweep_seconds: float = Field(60.0, gt=0)
    # A streaming PATCH commits a part every this many bytes or seconds (a cut loses at most one).
    upload_commit_bytes: int = Field(8 * 1024 * 1024, gt=0)
    upload_commit_seconds: float = Field(5.0, gt=0)
    # An append lock (or a large instance's write claim) its holder stopped renewing this long
    # ago is taken over by the next writer.
    upload_lock_lease_seconds: float = Field(30.0, gt=0, le=3600)
    spool_dir: Path | None = None
    # Each InferenceCompleted becomes a DICOM measurement report and overlays in its study.
    ai_results_enabled: bool = True
    consumer_group: str = "sonobridge-ingest"
    # Where clients reach ingest's HTTP root when that is not the address they connected to
    # (a reverse proxy, a port mapping), e.g. https://pacs.county.example:8443/sonobridge;
    # DICOMweb RetrieveURLs and BulkDataURIs start with it. Unset: the request's own base URL.
    public_base_url: str | None = None

    @field_validator("public_base_url")
    @classmethod
    def _base_url_is_a_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", value):
            raise ValueError(f"{value!r} is not an http(s) URL without query or fragment")
        return value.rstrip("/") if value else None


class Settings(ServiceSettings):
    """Ingest service settings (env: INGEST__AE_TITLE, INGEST__DIMSE_PORT, ...)."""

    ingest: IngestSettings = IngestSettings()

    def spool_path(self) -> Path:
        """Return the directory where request bodies are spooled before validation."""
        return (self.ingest.spool_dir or self.data_dir / "ingest-spool").resolve()
