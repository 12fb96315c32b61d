"""PDF and FHIR adapters loaded on first use: an idle service never pays their ~45 MB."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sonobridge.reporting.domain.records import Exam, ReadRecord, ReportVersion

if TYPE_CHECKING:
    from sonobridge.reporting.adapters.pdf import ReportPdfRenderer


class DeferredPdfRenderer:
    """A ReportPdfRenderer whose font is loaded when the first report is signed."""

    def __init__(self, font_path: Path | None = None) -> None:
        # A configured font that is missing still stops start-up, as the eager renderer did.
        if font_path is not None and not font_path.exists():
            raise FileNotFoundError(f"PDF font {font_path} does not exist")
        self._font_path = font_path
        self._inner: ReportPdfRenderer | None = None
        self._lock = threading.Lock()

    def __call__(self, document: dict[str, Any]) -> bytes:
        """Return the PDF bytes of one report version (the document written as its .json)."""
        with self._lock:
            if self._inner is None:
                from sonobridge.reporting.adapters.pdf import ReportPdfRenderer

                self._inner = ReportPdfRenderer(self._font_path)
        return self._inner(document)


def fhir_bundle(version: ReportVersion, read: ReadRecord, exam: Exam | None) -> dict[str, Any]:
    """Return the FHIR Bundle of a signed version (fhir.resources imported on the first one)."""
    from sonobridge.reporting.adapters.fhir import bundle_of

    return bundle_of(version, read, exam)
