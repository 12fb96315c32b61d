"""Focal lesions: segment, count, size (mm) and call cystic vs solid, with confidence."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy

from sonobridge.inference.modules.base import ModuleFinding, ModuleFrame, ModuleOutput
from sonobridge.inference.modules.common import (
    FINDING_SYSTEM,
    LoadedCard,
    canvas,
    graphic,
    gray,
    load_card,
    png_bytes,
    sigmoid,
    spacing_of,
)
from sonobridge.inference.modules.segmentation import SegmentingModule

NAME = "focal-lesions"
VERSION = "1.0.0"
EXAM_TYPES = frozenset({"thyroid", "liver", "abdomen"})
# Local finding codes and their UCUM units; modules.terminology binds them to SNOMED CT.
CODES = {"focal-lesion-count": "{count}", "focal-lesion-solid": "mm", "focal-lesion-cystic": "mm"}
CLASSES = ("background", "cystic", "solid")
# Border refinement (geometry, not fitted).
REFINE_CORE_QUANTILE = 0.7
REFINE_MARGIN_MM = 3.0
REFINE_SMOOTH_MM = 0.5
REFINE_MIN_CONTRAST = 6.0
# A solid region keeps its redrawn border only when it overlaps the network's region this much.
SOLID_MIN_AGREEMENT = 0.5
# Surroundings a region is compared with (geometry, not fitted).
RING_INNER_MM = 1.0
RING_OUTER_MM = 4.0


@dataclass
class Candidate:
    """A connected region of lesion probability with its features and calls."""

    mask: np.ndarray
    frame: ModuleFrame
    area_mm2: float
    feret_mm: float
    mean_p: float
    max_p: float
    p_cystic: float
    touches_edge: bool
    cnr: float = 0.0
    compactness: float = 1.0
    enhancement: float = 0.0
    redrawn: bool = False
    confidence: float = 0.0
    diameter_mm: float = 0.0

    @property
    def kind(self) -> str:
        """Return cystic or solid, whichever the network favours inside the region."""
        return "cystic" if self.p_cystic >= 0.5 else "solid"

    @property
    def kind_confidence(self) -> float:
        """Return the probability share of the chosen kind."""
        return max(self.p_cystic, 1 - self.p_cystic)

    def features(self) -> list[float]:
        """Return the inputs of the fitted detection-confidence model."""
        return [
            self.mean_p,
            self.max_p,
            np.log(self.area_mm2 + 1),
            float(self.touches_edge),
            self.cnr,
            self.compactness,
            self.p_cystic,
            self.enhancement,
        ]


def feret_mm(mask: np.ndarray, spacing: tuple[float, float]) -> float:
    """Return the longest distance across a region in mm (max Feret diameter)."""
    rr, cc = np.nonzero(mask)
    pts = np.c_[rr * spacing[0], cc * spacing[1]]
    if len(pts) > 3:
        with contextlib.suppress(scipy.spatial.QhullError):
            pts = pts[scipy.spatial.ConvexHull(pts).vertices]
    if len(pts) > 400:
        pts = pts[:: len(pts) // 400 + 1]
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)).max() if len(pts) > 1 else 0
    # Pixel centres understate the extent by about one pixel.
    return float(d + np.mean(spacing))


def refine_region(
    region: np.ndarray, p_lesion: np.ndarray, smooth: np.ndarray, spacing: tuple[float, float]
) -> np.ndarray:
    """Redraw a region's border where the grey level crosses midway between lesion and tissue.

    The network's probabilities are blurred (and smeared along the beam behind cysts); the
    lesion's own edge in the image is sharper, so the size comes from it.
    """
    px = float(np.mean(spacing))
    core = region & (p_lesion >= np.quantile(p_lesion[region], REFINE_CORE_QUANTILE))
    reach = scipy.ndimage.binary_dilation(region, iterations=max(round(REFINE_MARGIN_MM / px), 2))
    ring = reach & ~scipy.ndimage.binary_dilation(region, iterations=max(round(1.0 / px), 1))
    if core.sum() < 4 or ring.sum() < 20:
        return region
    inside, outside = float(np.median(smooth[core])), float(np.median(smooth[ring]))
    if abs(inside - outside) < REFINE_MIN_CONTRAST:
        return region
    mid = (inside + outside) / 2
    sel = reach & ((smooth < mid) if inside < outside else (smooth > mid))
    labels, n = scipy.ndimage.label(sel)
    if n == 0:
        return region
    overlap = scipy.ndimage.sum(core, labels, range(1, n + 1))
    k = int(np.argmax(overlap)) + 1
    if overlap[k - 1] < 0.5 * core.sum():
        return region
    refined = scipy.ndimage.binary_fill_holes(labels == k)
    return refined if refined.sum() >= 4 else region


def surround(
    region: np.ndarray, img: np.ndarray, fov: np.ndarray, spacing: tuple[float, float]
) -> tuple[float, float]:
    """Return (contrast-to-noise, posterior enhancement) of a region against its surroundings.

    A lesion differs from the tissue around it as a whole; a speckle cluster the network took
    for a lesion barely does once averaged over the region. Fluid lets the beam through, so the
    tissue right behind a cyst is brighter than the tissue beside it at the same depth.
    """
    px = float(np.mean(spacing))
    near = scipy.ndimage.binary_dilation(region, iterations=max(round(RING_INNER_MM / px), 1))
    far = scipy.ndimage.binary_dilation(region, iterations=max(round(RING_OUTER_MM / px), 2))
    ring = far & ~near & fov
    if ring.sum() < 10:
        return 0.0, 0.0
    inside, outside = float(img[region].mean()), float(img[ring].mean())
    cnr = abs(inside - outside) / (float(img[ring].std()) + 1.0)
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    shift = max(height // 2, 2)
    below = np.zeros_like(region)
    below[shift:] = region[:-shift]
    behind = below & ~region & fov
    beside = np.zeros_like(region)
    beside[:, width:] |= behind[:, :-width]
    beside[:, :-width] |= behind[:, width:]
    beside &= fov & ~far
    if behind.sum() < 10 or beside.sum() < 10:
        return cnr, 0.0
    enhancement = (float(img[behind].mean()) - float(img[beside].mean())) / 255.0
    return cnr, enhancement


def candidates(
    probs: np.ndarray, frame: ModuleFrame, spacing: tuple[float, float], params: dict[str, Any]
) -> list[Candidate]:
    """Threshold the lesion probability, split into regions, refine borders, describe each."""
    p_lesion = probs[1] + probs[2]
    mask = p_lesion >= params["segment_threshold"]
    mask = scipy.ndimage.binary_opening(mask, iterations=1)
    labels, n = scipy.ndimage.label(mask)
    img = gray(frame)
    fov = scipy.ndimage.binary_erosion(img > 2, iterations=3)
    px = float(np.mean(spacing))
    smooth = scipy.ndimage.gaussian_filter(img, max(REFINE_SMOOTH_MM / px, 1.0))
    px_area = spacing[0] * spacing[1]
    out = []
    for k in range(1, n + 1):
        m = labels == k
        # The network's solid regions often straddle a faint hyperechoic lesion and its
        # shadow; redrawing them at the grey level crossing then follows the shadow instead.
        refined = refine_region(m, p_lesion, smooth, spacing)
        agreement = float((refined & m).sum()) / float((refined | m).sum())
        redrawn = refined is not m and (
            probs[1][m].sum() >= probs[2][m].sum() or agreement >= SOLID_MIN_AGREEMENT
        )
        if redrawn:
            m = refined
        area = float(m.sum() * px_area)
        if area < params["min_area_mm2"]:
            continue
        pc, ps = float(probs[1][m].mean()), float(probs[2][m].mean())
        cnr, enhancement = surround(m, smooth, fov, spacing)
        feret = feret_mm(m, spacing)
        out.append(
            Candidate(
                mask=m,
                frame=frame,
                area_mm2=area,
                feret_mm=feret,
                mean_p=float(p_lesion[m].mean()),
                max_p=float(p_lesion[m].max()),
                p_cystic=pc / max(pc + ps, 1e-9),
                touches_edge=bool((m & ~fov).any()),
                cnr=cnr,
                compactness=min(area / (np.pi / 4 * feret**2), 1.0),
                enhancement=enhancement,
                redrawn=redrawn,
            )
        )
    return out


class FocalLesionModule(SegmentingModule, name=NAME, version=VERSION, exam_types=EXAM_TYPES):
    """Detect and segment focal lesions in thyroid, liver and abdomen exams."""

    def __init__(self, card: LoadedCard, runtime: object | None = None) -> None:
        super().__init__(card, runtime)
        self.params = card.parameters
        t = card.raw["thresholds"]
        self.report_above = float(t["report_if_confidence_at_least"])
        self.low_conf = float(t["low_confidence_below"])

    def frame_candidates(self, frame: ModuleFrame) -> list[Candidate]:
        """Return every candidate region in one frame with calibrated confidence and size."""
        sp = spacing_of(frame)
        if sp is None:
            return []
        probs = self.segmenter.probabilities(gray(frame).astype(np.uint8))
        found = candidates(probs, frame, sp, self.params)
        w = np.asarray(self.params["detection_logistic"])
        for c in found:
            c.confidence = float(sigmoid(w[0] + np.dot(w[1:], c.features())))
            key = "size_calibration" if c.redrawn else "size_calibration_network_border"
            a, b = self.params.get(key, self.params["size_calibration"])
            c.diameter_mm = float(a * c.feret_mm + b)
        return found

    def detect(self, frames: Sequence[ModuleFrame]) -> tuple[ModuleFrame | None, list[Candidate]]:
        """Pick the key frame (most confident detections) and return its candidates."""
        best: tuple[float, ModuleFrame | None, list[Candidate]] = (-1.0, None, [])
        for frame in frames:
            found = self.frame_candidates(frame)
            score = sum(c.confidence for c in found if c.confidence >= self.report_above)
            if score > best[0]:
                best = (score, frame, found)
        return best[1], best[2]

    def run(self, frames: Sequence[ModuleFrame]) -> ModuleOutput:
        """Report lesion count, and per lesion its size in mm and cystic vs solid."""
        key, found = self.detect(frames)
        reported = sorted(
            (c for c in found if c.confidence >= self.report_above),
            key=lambda c: -c.diameter_mm,
        )
        uid = key.sop_instance_uid if key else (frames[0].sop_instance_uid if frames else "")
        findings = []
        for i, c in enumerate(reported, start=1):
            conf = c.confidence * c.kind_confidence
            noun = "cyst" if c.kind == "cystic" else "nodule"
            findings.append(
                ModuleFinding(
                    code=f"focal-lesion-{c.kind}",
                    code_system=FINDING_SYSTEM,
                    display=f"Focal lesion {i}: {noun} {c.diameter_mm:.0f} mm, {c.kind}",
                    value=round(c.diameter_mm, 1),
                    unit="mm",
                    confidence=round(conf, 4),
                    low_confidence=conf < self.low_conf or c.touches_edge,
                    abnormal=True,
                    sop_instance_uid=uid,
                    attributes={
                        "index": str(i),
                        "kind": c.kind,
                        "detection_confidence": f"{c.confidence:.3f}",
                        "kind_confidence": f"{c.kind_confidence:.3f}",
                        "area_mm2": f"{c.area_mm2:.1f}",
                        "at_image_edge": str(c.touches_edge).lower(),
                    },
                )
            )
        doubtful = [c for c in found if self.low_conf * 0.5 <= c.confidence < self.report_above]
        count_conf = float(
            np.prod([max(c.confidence, 1 - c.confidence) for c in found]) if found else 1.0
        )
        findings.insert(
            0,
            ModuleFinding(
                code="focal-lesion-count",
                code_system=FINDING_SYSTEM,
                display=f"Focal lesions: {len(reported)}",
                value=float(len(reported)),
                unit="{count}",
                confidence=round(count_conf, 4),
                low_confidence=count_conf < self.low_conf or key is None,
                abnormal=bool(reported),
                sop_instance_uid=uid,
                attributes={"uncertain_regions": str(len(doubtful))},
            ),
        )
        overlays = {f"{NAME}.png": self._overlay(key, reported)} if key is not None else {}
        details = {
            "frames": len(frames),
            "key_frame": None
            if key is None
            else {"sop_instance_uid": uid, "frame_index": key.frame_index},
            "candidates": [
                {
                    "diameter_mm": c.diameter_mm,
                    "kind": c.kind,
                    "confidence": c.confidence,
                    "reported": c.confidence >= self.report_above,
                }
                for c in found
            ],
            "graphics": [_outline(c, i) for i, c in enumerate(reported, start=1)],
        }
        return ModuleOutput(NAME, VERSION, findings, overlays, details)

    def _overlay(self, frame: ModuleFrame, reported: list[Candidate]) -> bytes:
        img, draw = canvas(gray(frame).astype(np.uint8))
        for i, c in enumerate(reported, start=1):
            edge = c.mask & ~scipy.ndimage.binary_erosion(c.mask)
            rr, cc = np.nonzero(edge)
            colour = (0, 200, 255) if c.kind == "cystic" else (255, 120, 0)
            draw.point(list(zip(cc.tolist(), rr.tolist(), strict=True)), fill=colour)
            r0, c0 = rr.min(), cc.min()
            draw.text((c0, max(r0 - 12, 0)), f"{i}: {c.diameter_mm:.0f} mm {c.kind}", fill=colour)
        return png_bytes(img)


def _outline(c: Candidate, index: int) -> dict[str, Any]:
    """Return a lesion's outline (convex hull of its region, closed) in pixels."""
    rr, cc = np.nonzero(c.mask)
    pts = np.stack([rr, cc], axis=1).astype(float)
    if len(pts) >= 3 and np.linalg.matrix_rank(pts - pts.mean(axis=0)) == 2:
        pts = pts[scipy.spatial.ConvexHull(pts).vertices]
    out = graphic(f"focal-lesion-{c.kind}", "POLYLINE", np.vstack([pts, pts[:1]]), c.frame)
    out["index"] = index
    return out


def load(runtime: object | None = None) -> FocalLesionModule:
    """Load the focal-lesion module and its network from the card."""
    return FocalLesionModule(load_card(NAME, VERSION, runtime), runtime)
