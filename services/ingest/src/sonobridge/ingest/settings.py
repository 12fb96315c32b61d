"""Ingest settings: the shared sections plus DIMSE, upload and size limits."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from sonobridge.common.settings import ServiceSettings


class IngestSettings(BaseModel):
    """What only ingest needs: DICOM identity, accepted callers, limits and upload expiry."""

    ae_title: str = Field("SONOBRIDGE", min_length=1, max_length=16)
    dimse_host: str = "127.0.0.1"
    dimse_port: int = Field(11112, ge=0, le=65535)
    dimse_enabled: bool = True
    # Empty means any calling AE title may store; otherwise only these.
    accepted_calling_ae_titles: list[str] = Field(default_factory=list)
    # Institution that instances pushed by a calling AE belong to (AE title -> institution id).
    calling_ae_institutions: dict[str, str] = Field(default_factory=dict)
    # Consortium that DIMSE arrivals belong to; tokens carry it for the other paths.
    consortium_id: str = "default"
    max_instance_bytes: int = Field(2 * 1024**3, gt=0)
    upload_expiry_seconds: int = Field(24 * 3600, gt=0)
    expiry_sweep_seconds: float = Field(60.0, gt=0)
    spool_dir: Path | None = None


class Settings(ServiceSettings):
    """Ingest service settings (env: INGEST__AE_TITLE, INGEST__DIMSE_PORT, ...)."""

    ingest: IngestSettings = IngestSettings()

    def spool_path(self) -> Path:
        """Return the directory where request bodies are spooled before validation."""
        return (self.ingest.spool_dir or self.data_dir / "ingest-spool").resolve()
