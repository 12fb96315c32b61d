"""AI results as DICOM: what goes into the measurement report and its overlays, and their UIDs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sonobridge.common.findings import CodedFinding

# The project's own codes, for measurements PS3.16 has no concept for (e.g. carotid IMT).
LOCAL_SCHEME = "99SONOBRIDGE"
# Coding scheme designators (PS3.16 8) for the code systems the inference modules emit.
SCHEME_OF_SYSTEM = {
    "http://snomed.info/sct": "SCT",
    "http://loinc.org": "LN",
    "http://dicom.nema.org/resources/ontology/DCM": "DCM",
    "urn:sonobridge:finding": LOCAL_SCHEME,
}
# Meanings of the UCUM units the modules emit; an unknown unit keeps its code as meaning.
UCUM_MEANINGS = {
    "mm": "millimeter",
    "cm": "centimeter",
    "wk": "week",
    "d": "day",
    "1": "no units",
    "{count}": "count",
    "cm/s": "centimeter per second",
    "mm2": "square millimeter",
}
# SCOORD graphic types (PS3.3 C.18.6.1.2) the modules draw.
GRAPHIC_TYPES = frozenset({"POINT", "MULTIPOINT", "POLYLINE", "CIRCLE", "ELLIPSE"})
# Series numbers of the derived series, far from a handheld's own (1, 2, ...).
REPORT_SERIES_NUMBER = 9001
OVERLAY_SERIES_NUMBER = 9002


def derived_uid(inference_id: str, *parts: str) -> str:
    """Return a UID fixed by the inference run and the object's role (a redelivery reuses it).

    2.25 UIDs (PS3.5 B.2) from a UUID-sized digest: 128 bits, at most 44 characters.
    """
    digest = hashlib.sha256("\x1f".join(("sonobridge-ai", inference_id, *parts)).encode())
    return f"2.25.{int(digest.hexdigest()[:32], 16)}"


@dataclass(frozen=True)
class Outline:
    """Where on an image a measurement was taken: an SCOORD graphic in pixels (column, row)."""

    graphic_type: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class AiMeasurement(CodedFinding):
    """One AI finding as the report states it: code, value and unit, image, qualifiers."""

    model_name: str
    model_version: str
    sop_instance_uid: str
    # Zero-based index of the frame in a multi-frame image; None when not known.
    frame_index: int | None = None
    outline: Outline | None = None
    finding_site: tuple[str, str, str] | None = None
    local_code: str = ""

    @property
    def scheme(self) -> str:
        """Return the coding scheme designator of the finding's code."""
        return SCHEME_OF_SYSTEM.get(self.code_system, LOCAL_SCHEME)

    @property
    def measured(self) -> bool:
        """Tell whether the report may state the value as a number (else: a qualifier)."""
        return self.value is not None and not self.low_confidence


@dataclass(frozen=True)
class OverlayImage:
    """A module's drawn overlay (RGB PNG) and the image frame it was drawn on."""

    object_key: str
    model_name: str
    model_version: str
    sop_instance_uid: str
    frame_index: int | None


@dataclass(frozen=True)
class AiResult:
    """One inference run over an exam, as far as its DICOM rendition needs it."""

    inference_id: str
    study_instance_uid: str
    completed_at: datetime
    measurements: tuple[AiMeasurement, ...]
    overlays: tuple[OverlayImage, ...] = field(default_factory=tuple)
    # Object keys of the modules' findings.json (their details place measurements on frames).
    details_keys: tuple[str, ...] = ()

    @property
    def report_series_uid(self) -> str:
        """Return the SeriesInstanceUID of the measurement report's series."""
        return derived_uid(self.inference_id, "sr-series")

    @property
    def report_uid(self) -> str:
        """Return the SOPInstanceUID of the measurement report."""
        return derived_uid(self.inference_id, "sr")

    @property
    def overlay_series_uid(self) -> str:
        """Return the SeriesInstanceUID of the overlay captures' series."""
        return derived_uid(self.inference_id, "overlay-series")

    def overlay_uid(self, overlay: OverlayImage) -> str:
        """Return the SOPInstanceUID of one overlay's secondary capture."""
        return derived_uid(self.inference_id, "overlay", overlay.object_key)

    def source_uids(self) -> list[str]:
        """Return the images the report and overlays refer to, in first-mention order."""
        seen: dict[str, None] = {}
        for uid in (m.sop_instance_uid for m in self.measurements):
            if uid:
                seen.setdefault(uid)
        for uid in (o.sop_instance_uid for o in self.overlays):
            if uid:
                seen.setdefault(uid)
        return list(seen)


def _outline(graphic: dict[str, Any]) -> Outline | None:
    points = tuple((float(x), float(y)) for x, y in graphic.get("points") or ())
    kind = str(graphic.get("graphic_type", ""))
    return Outline(kind, points) if points and kind in GRAPHIC_TYPES else None


def _frame_of(details: dict[str, Any]) -> tuple[str, int | None]:
    shown = details.get("overlay_frame") or details.get("key_frame") or {}
    index = shown.get("frame_index")
    return str(shown.get("sop_instance_uid") or ""), None if index is None else int(index)


def with_module_details(
    result: AiResult, details: dict[tuple[str, str], dict[str, Any]]
) -> AiResult:
    """Place each measurement and overlay on its image frame, from the modules' details.

    A module lists one graphic per measurement it drew, in the order of its findings; a
    finding without one keeps no outline (it is still reported, on its image).
    """
    unused: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for (model, version), d in details.items():
        for g in d.get("graphics") or ():
            unused.setdefault((model, version, str(g.get("local_code"))), []).append(g)
    measurements = []
    for m in result.measurements:
        queue = unused.get((m.model_name, m.model_version, m.local_code or m.code), [])
        graphic = queue.pop(0) if queue else None
        if graphic is not None and graphic.get("sop_instance_uid") == m.sop_instance_uid:
            frame = graphic.get("frame_index")
            m = replace(
                m,
                outline=_outline(graphic),
                frame_index=None if frame is None else int(frame),
            )
        measurements.append(m)
    overlays = []
    for o in result.overlays:
        sop, frame = _frame_of(details.get((o.model_name, o.model_version), {}))
        overlays.append(replace(o, sop_instance_uid=o.sop_instance_uid or sop, frame_index=frame))
    return replace(result, measurements=tuple(measurements), overlays=tuple(overlays))
