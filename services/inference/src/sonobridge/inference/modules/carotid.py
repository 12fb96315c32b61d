"""Carotid intima-media thickness: far-wall lumen-intima and media-adventitia edges in mm."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy

from sonobridge.inference.modules.base import ModuleFinding, ModuleFrame, ModuleOutput
from sonobridge.inference.modules.carotid_evidence import carotid_evidence, find_lumen
from sonobridge.inference.modules.common import (
    FINDING_SYSTEM,
    LoadedCard,
    call_confidence,
    canvas,
    graphic,
    gray,
    load_card,
    normal_cdf,
    png_bytes,
    sigmoid,
    spacing_of,
)

NAME = "carotid-imt"
VERSION = "1.0.0"
EXAM_TYPES = frozenset({"carotid"})
# Local finding codes and their UCUM units; modules.terminology binds them to SNOMED CT.
CODES = {"carotid-far-wall-imt": "mm", "carotid-plaque": "mm", "carotid-imt-not-measurable": ""}

# Geometry of the measurement (not fitted): why these sizes is in the card.
WINDOW_MM = 2.0
PEAK_SEARCH_MM = (0.2, 4.0)
PROFILE_SMOOTH_MM = 0.08


@dataclass
class FrameWall:
    """Far-wall edges measured in one frame, per lateral window."""

    frame: ModuleFrame
    spacing: tuple[float, float]
    cols: np.ndarray
    li_rows: np.ndarray
    ma_rows: np.ndarray
    lumen_rows: tuple[int, int]

    @property
    def raw_mm(self) -> np.ndarray:
        """Return LI-edge to adventitia-peak distances in mm, per window."""
        return (self.ma_rows - self.li_rows) * self.spacing[0]


def measure_frame(frame: ModuleFrame) -> FrameWall | None:
    """Find the lumen and, per 2 mm window, the far wall's LI edge and adventitia peak."""
    sp = spacing_of(frame)
    if sp is None:
        return None
    img = gray(frame)
    row_mm, col_mm = sp
    profile = scipy.ndimage.gaussian_filter1d(np.median(img, axis=1), 0.3 / row_mm)
    lumen = find_lumen(profile, row_mm)
    if lumen is None:
        return None
    top, bottom = lumen
    centre = (top + bottom) // 2
    h, w = img.shape
    wc = max(round(WINDOW_MM / col_mm), 4)
    end = min(h, bottom + int(5.0 / row_mm))
    a_off, b_off = (int(m / row_mm) for m in PEAK_SEARCH_MM)
    cols, lis, mas = [], [], []
    for c0 in range(0, w - wc + 1, max(wc // 2, 1)):
        p = scipy.ndimage.gaussian_filter1d(
            img[:, c0 : c0 + wc].mean(axis=1), PROFILE_SMOOTH_MM / row_mm
        )
        if p[centre:end].size < 3:
            continue
        lum = float(np.median(p[top : bottom + 1]))
        half = lum + 0.5 * (float(p[centre:end].max()) - lum)
        above = np.flatnonzero(p[centre:end] > half)
        if not above.size or above[0] == 0:
            continue
        i = centre + int(above[0])
        li = i - 1 + (half - p[i - 1]) / (p[i] - p[i - 1] + 1e-9)
        a, b = int(li) + a_off, min(int(li) + b_off, h)
        seg = p[a:b]
        if seg.size < 3:
            continue
        j = int(np.argmax(seg))
        pk = float(a + j)
        if 0 < j < seg.size - 1:
            y0, y1, y2 = seg[j - 1], seg[j], seg[j + 1]
            pk += 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2 - 1e-9)
        cols.append(c0 + wc / 2)
        lis.append(li)
        mas.append(pk)
    if len(cols) < 3:
        return None
    return FrameWall(frame, sp, np.array(cols), np.array(lis), np.array(mas), lumen)


@dataclass
class ExamWall:
    """Exam-level IMT features pooled over frames (inputs to the fitted calibration)."""

    raw_median_mm: float
    spread_mm: float
    n_windows: int
    max_cal_mm: float
    walls: list[FrameWall]
    best: FrameWall
    max_index: int


def pool(walls: list[FrameWall], a: float, b: float) -> ExamWall:
    """Pool frames: median raw distance, window spread, and the calibrated focal maximum."""
    medians = [float(np.median(wl.raw_mm)) for wl in walls]
    spreads = [float(np.median(np.abs(wl.raw_mm - np.median(wl.raw_mm)))) for wl in walls]
    maxima, idx = [], []
    for wl in walls:
        cal = scipy.ndimage.median_filter(a * wl.raw_mm + b, size=3, mode="nearest")
        idx.append(int(np.argmax(cal)))
        maxima.append(float(cal.max()))
    k = int(np.argsort(maxima)[len(maxima) // 2])
    best = int(np.argmin(spreads))
    return ExamWall(
        raw_median_mm=float(np.median(medians)),
        spread_mm=float(np.median(spreads)),
        n_windows=int(sum(len(wl.cols) for wl in walls)),
        max_cal_mm=float(np.median(maxima)),
        walls=walls,
        best=walls[best] if maxima[best] >= maxima[k] else walls[k],
        max_index=idx[best] if maxima[best] >= maxima[k] else idx[k],
    )


class CarotidImtModule:
    """Far-wall IMT with thickening (>= 0.9 mm) and plaque (>= 1.5 mm focal) calls."""

    name = NAME
    version = VERSION
    exam_types = EXAM_TYPES

    def __init__(self, card: LoadedCard) -> None:
        self.card = card.raw
        # Measurement-only modules have no network, so no hash to report.
        self.sha256: str = card.raw.get("sha256") or ""
        p = card.parameters
        self.a, self.b = float(p["calibration_a"]), float(p["calibration_b"])
        self.sigma0, self.sigma_k = float(p["sigma0_mm"]), float(p["sigma_spread_k"])
        self.plaque_w = [float(v) for v in p["plaque_logistic"]]
        t = card.raw["thresholds"]
        self.thickening_mm = float(t["thickening_mm"])
        self.plaque_mm = float(t["plaque_mm"])
        self.low_conf = float(t["low_confidence_below"])

    def estimate(self, walls: list[FrameWall]) -> dict[str, Any]:
        """Return calibrated IMT, its uncertainty and the call probabilities for pooled walls."""
        ex = pool(walls, self.a, self.b)
        imt = self.a * ex.raw_median_mm + self.b
        sigma = float(np.hypot(self.sigma0, self.sigma_k * ex.spread_mm / np.sqrt(len(walls))))
        p_thick = float(normal_cdf((imt - self.thickening_mm) / sigma))
        z = (
            self.plaque_w[0]
            + self.plaque_w[1] * (ex.max_cal_mm - self.plaque_mm)
            + self.plaque_w[2] * (ex.max_cal_mm - imt)
        )
        return {
            "pooled": ex,
            "imt_mm": float(imt),
            "sigma_mm": sigma,
            "p_thickened": p_thick,
            "max_imt_mm": ex.max_cal_mm,
            "p_plaque": float(sigmoid(z)),
        }

    def run(self, frames: Sequence[ModuleFrame]) -> ModuleOutput:
        """Measure the far wall in every frame and report pooled IMT and plaque findings."""
        # Defence in depth: the view check may err, so only frames where the module itself
        # sees a lumen between two walls are measured.
        evidence = [carotid_evidence(f) for f in frames]
        shown = [f for f, e in zip(frames, evidence, strict=True) if e.present]
        walls = [w for w in (measure_frame(f) for f in shown) if w is not None]
        no_spacing = [f.sop_instance_uid for f in shown if spacing_of(f) is None]
        if not walls:
            absent = not shown and bool(frames)
            reason = (
                f"not a carotid: {evidence[0].reason}"
                if absent
                else "no pixel spacing"
                if no_spacing
                else "far wall not found"
            )
            uid = frames[0].sop_instance_uid if frames else ""
            finding = ModuleFinding(
                code="carotid-imt-not-measurable",
                code_system=FINDING_SYSTEM,
                display=f"Carotid IMT not measurable ({reason})",
                value=None,
                unit="",
                confidence=0.0,
                low_confidence=True,
                abnormal=False,
                sop_instance_uid=uid,
                attributes={"reason": reason, "not_this_anatomy": str(absent).lower()},
            )
            return ModuleOutput(
                NAME, VERSION, [finding], {}, {"frames": len(frames), "measured_frames": 0}
            )
        est = self.estimate(walls)
        ex: ExamWall = est["pooled"]
        uid = ex.best.frame.sop_instance_uid
        thick = est["p_thickened"] >= 0.5
        plaque = est["p_plaque"] >= 0.5
        c_thick = call_confidence(est["p_thickened"])
        c_plaque = call_confidence(est["p_plaque"])
        findings = [
            ModuleFinding(
                code="carotid-far-wall-imt",
                code_system=FINDING_SYSTEM,
                display="Carotid far-wall intima-media thickness (mean)",
                value=round(est["imt_mm"], 3),
                unit="mm",
                confidence=round(c_thick, 4),
                low_confidence=c_thick < self.low_conf,
                abnormal=thick,
                sop_instance_uid=uid,
                attributes={
                    "thickened": str(thick).lower(),
                    "threshold_mm": str(self.thickening_mm),
                    "sigma_mm": f"{est['sigma_mm']:.3f}",
                    "frame_index": str(ex.best.frame.frame_index),
                },
            ),
            ModuleFinding(
                code="carotid-plaque",
                code_system=FINDING_SYSTEM,
                display="Carotid plaque (focal far-wall thickening >= 1.5 mm)",
                value=round(est["max_imt_mm"], 3),
                unit="mm",
                confidence=round(c_plaque, 4),
                low_confidence=c_plaque < self.low_conf,
                abnormal=plaque,
                sop_instance_uid=uid,
                attributes={"present": str(plaque).lower(), "threshold_mm": str(self.plaque_mm)},
            ),
        ]
        overlay = self._overlay(ex, est, plaque)
        details = {
            "frames": len(frames),
            "measured_frames": len(walls),
            "windows": ex.n_windows,
            "imt_mm": est["imt_mm"],
            "sigma_mm": est["sigma_mm"],
            "max_imt_mm": est["max_imt_mm"],
            "p_thickened": est["p_thickened"],
            "p_plaque": est["p_plaque"],
            "overlay_frame": {"sop_instance_uid": uid, "frame_index": ex.best.frame.frame_index},
            "graphics": _imt_graphics(ex),
        }
        return ModuleOutput(NAME, VERSION, findings, {f"{NAME}.png": overlay}, details)

    def _overlay(self, ex: ExamWall, est: dict[str, Any], plaque: bool) -> bytes:
        wl = ex.best
        img, draw = canvas(wl.frame.pixels)
        half = (wl.cols[1] - wl.cols[0]) if len(wl.cols) > 1 else 4
        for c, li, ma in zip(wl.cols, wl.li_rows, wl.ma_rows, strict=True):
            draw.line([(c - half / 2, li), (c + half / 2, li)], fill=(0, 255, 0), width=1)
            draw.line([(c - half / 2, ma), (c + half / 2, ma)], fill=(255, 220, 0), width=1)
        top, bottom = wl.lumen_rows
        draw.line([(1, top), (1, bottom)], fill=(0, 160, 255), width=2)
        if plaque:
            c = wl.cols[ex.max_index]
            li, ma = wl.li_rows[ex.max_index], wl.ma_rows[ex.max_index]
            draw.rectangle([c - 2 * half, li - 3, c + 2 * half, ma + 3], outline=(255, 0, 0))
        draw.text(
            (4, 4),
            f"IMT {est['imt_mm']:.2f} mm  max {est['max_imt_mm']:.2f} mm",
            fill=(255, 255, 0),
        )
        return png_bytes(img)


def _imt_graphics(ex: ExamWall) -> list[dict[str, Any]]:
    """Return the IMT caliper (middle window) and the plaque caliper (thickest) in pixels."""
    wl = ex.best
    mid = len(wl.cols) // 2
    lines = []
    for code, i in (("carotid-far-wall-imt", mid), ("carotid-plaque", ex.max_index)):
        c = float(wl.cols[i])
        points = np.array([[wl.li_rows[i], c], [wl.ma_rows[i], c]], dtype=float)
        lines.append(graphic(code, "POLYLINE", points, wl.frame))
    return lines


def load(runtime: object | None = None) -> CarotidImtModule:
    """Load the carotid IMT module from its card."""
    return CarotidImtModule(load_card(NAME, VERSION, runtime))
