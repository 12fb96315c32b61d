"""DICOMweb (PS3.18) over the ingest use cases: STOW-RS, QIDO-RS and WADO-RS."""

from __future__ import annotations

from sonobridge.ingest.entrypoints.dicomweb import qido, stow, wado
from sonobridge.ingest.entrypoints.dicomweb.paths import router

__all__ = ["qido", "router", "stow", "wado"]
