"""The AI result renderer, imported on its first exam: highdicom's code tables cost ~80 MB idle."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sonobridge.ingest.domain.ai_results import AiResult, OverlayImage

if TYPE_CHECKING:
    from sonobridge.ingest.adapters.ai_dicom import HighdicomAiRenderer


class DeferredAiRenderer:
    """A HighdicomAiRenderer built when the first inference result arrives."""

    def __init__(self) -> None:
        self._inner: HighdicomAiRenderer | None = None
        self._lock = threading.Lock()

    def _renderer(self) -> HighdicomAiRenderer:
        with self._lock:
            if self._inner is None:
                # pydicom's SR code dictionary, which highdicom loads, is most of an idle
                # ingest's memory; a node that never gets an AI result never pays for it.
                from sonobridge.ingest.adapters.ai_dicom import HighdicomAiRenderer

                self._inner = HighdicomAiRenderer()
            return self._inner

    def measurement_report(
        self, result: AiResult, sources: Mapping[str, Mapping[str, Any]]
    ) -> bytes:
        """Return the TID 1500 measurement report of every finding, as Part 10 bytes."""
        return self._renderer().measurement_report(result, sources)

    def overlay_capture(
        self,
        result: AiResult,
        overlay: OverlayImage,
        png: bytes,
        source: Mapping[str, Any],
        instance_number: int,
    ) -> bytes:
        """Return one overlay as an RGB secondary capture, as Part 10 bytes."""
        return self._renderer().overlay_capture(result, overlay, png, source, instance_number)
