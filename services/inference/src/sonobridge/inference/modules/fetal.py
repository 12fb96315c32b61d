"""Fetal biometry: skull ellipse, HC, BPD, OFD and gestational age by Hadlock 1984."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy

from sonobridge.inference.modules.base import Evidence, ModuleFinding, ModuleFrame, ModuleOutput
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
from sonobridge.inference.modules.fetal_evidence import NOMINAL_WIDTH_MM, judge_head
from sonobridge.inference.modules.fetal_geometry import (
    HADLOCK_RANGE_WEEKS,
    Ellipse,
    fit_ellipse,
    hadlock_2sd_weeks,
    hadlock_ga_weeks,
    ramanujan,
)
from sonobridge.inference.modules.segmentation import SegmentingModule

NAME = "fetal-biometry"
VERSION = "1.0.0"
EXAM_TYPES = frozenset({"obstetric"})
# Local finding codes and their UCUM units; modules.terminology binds them to LOINC.
CODES = {
    "fetal-head-circumference": "mm",
    "fetal-biparietal-diameter": "mm",
    "fetal-occipitofrontal-diameter": "mm",
    "fetal-gestational-age": "wk",
    "fetal-biometry-not-measurable": "",
}
CLASSES = ("background", "head")
MAX_FRAMES = 4
MAX_CONTOUR_POINTS = 1500
# The outline is found on a grid of at most this many cells a side (the network's is coarser);
# the skull ridge then places it on the full-resolution frame.
WORK_MAX_SIDE = 400
MIN_REGION_CELLS = 60
OPENING_CELLS = 12
CUT_OFF_MARGIN = 0.1
# Skull search: along normals of the network's ellipse, within a share of its mean radius.
RIDGE_SMOOTH_MM = 0.6
RIDGE_NORMALS = 180
RIDGE_STEPS = 49
RIDGE_AGREE = 0.03
RIDGE_OUTER_EDGE = True
RIDGE_FLOOR_MM = 4.0
RIDGE_PASSES = (0.2, 0.06)


def skull_ridge(
    img: np.ndarray, spacing: tuple[float, float], ellipse: Ellipse, reach_share: float = 0.12
) -> tuple[Ellipse, float] | None:
    """Refit the ellipse to the bright bone ridge found along normals near the network's outline.

    The network's outline is blurred by its coarse grid; the skull is the brightest thing across
    the outline, so the ridge places it to a pixel. Returns the ridge ellipse and the share of
    normals whose ridge agreed with it.
    """
    sp = np.asarray(spacing)
    px = float(sp.mean())
    g = scipy.ndimage.gaussian_filter(img, max(RIDGE_SMOOTH_MM / px, 0.7))
    n = RIDGE_NORMALS
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    minor = np.array([-ellipse.axis[1], ellipse.axis[0]])
    a, b = ellipse.semi_major, ellipse.semi_minor
    pts = ellipse.centre + np.outer(a * np.cos(t), ellipse.axis) + np.outer(b * np.sin(t), minor)
    normal = np.outer(np.cos(t) / a, ellipse.axis) + np.outer(np.sin(t) / b, minor)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    reach = reach_share * math.sqrt(a * b)
    offsets = np.linspace(-reach, reach, RIDGE_STEPS)
    samples = pts[:, None, :] + offsets[None, :, None] * normal[:, None, :]
    coords = (samples / sp).reshape(-1, 2).T
    inside = (
        (coords[0] >= 0)
        & (coords[0] <= img.shape[0] - 1)
        & (coords[1] >= 0)
        & (coords[1] <= img.shape[1] - 1)
    ).reshape(n, -1)
    vals = scipy.ndimage.map_coordinates(g, coords, order=1, cval=0.0).reshape(n, -1)
    vals = np.where(inside, vals, -1.0)
    best = vals.argmax(axis=1)
    rows = np.arange(n)
    ok = inside[rows, best] & (vals[rows, best] > 0)
    edge_at = offsets[best].copy()
    if RIDGE_OUTER_EDGE:
        # The expert's ellipse follows the skull's outer border: half-way down the outward slope.
        step = offsets[1] - offsets[0]
        for i in np.flatnonzero(ok):
            tail = vals[i, best[i] :]
            floor = tail[: max(int(RIDGE_FLOOR_MM / step), 2)].min()
            half = (tail[0] + floor) / 2
            below = np.flatnonzero(tail <= half)
            if below.size and below[0] > 0:
                j = below[0]
                frac = (tail[j - 1] - half) / max(tail[j - 1] - tail[j], 1e-6)
                edge_at[i] = offsets[best[i]] + (j - 1 + frac) * step
    ridge = pts + edge_at[:, None] * normal
    if ok.sum() < n // 3:
        return None
    fitted = fit_ellipse(ridge[ok])
    if fitted is None:
        return None
    dev = np.abs(fitted.normalised_radius(ridge[ok]) - 1)
    keep = dev <= 3 * np.median(dev) + 0.01
    refit = fit_ellipse(ridge[ok][keep])
    if refit is None or not np.isfinite(refit.semi_major):
        return None
    agree = np.abs(refit.normalised_radius(ridge[ok]) - 1) <= RIDGE_AGREE
    return refit, float(agree.sum() / n)


@dataclass
class HeadView:
    """The skull found in one frame: the raw ellipse and what says how far to trust it."""

    frame: ModuleFrame
    ellipse: Ellipse
    raw_hc_mm: float
    residual: float
    mean_p: float
    area_ratio: float
    cut_off: float
    ridge_agree: float = 1.0
    ridge_shift: float = 0.0

    def features(self) -> list[float]:
        """Return the inputs of the confidence logistic (order as the card lists them)."""
        return [
            math.log(self.raw_hc_mm),
            self.residual,
            self.mean_p,
            abs(self.area_ratio - 1.0),
            self.cut_off,
            self.ellipse.semi_minor / self.ellipse.semi_major,
            self.ridge_agree,
            self.ridge_shift,
        ]


def find_head(
    frame: ModuleFrame, probs: np.ndarray, threshold: float, ridge: bool = True
) -> HeadView | None:
    """Segment the head, fit an ellipse to its outline, refine it on the skull, judge the fit."""
    full_sp = spacing_of(frame)
    if full_sp is None:
        return None
    # probs may be on a coarser grid than the frame: its cells are this many mm.
    fh, fw = frame.pixels.shape[:2]
    sp = (full_sp[0] * fh / probs.shape[1], full_sp[1] * fw / probs.shape[2])
    # Opening cuts the thin bridges by which the head region leaks into the uterine wall.
    mask = scipy.ndimage.binary_opening(probs[1] >= threshold, iterations=OPENING_CELLS)
    labels, n = scipy.ndimage.label(mask)
    if n == 0:
        return None
    sizes = scipy.ndimage.sum(mask, labels, range(1, n + 1))
    region = scipy.ndimage.binary_fill_holes(labels == int(np.argmax(sizes)) + 1)
    if region.sum() < MIN_REGION_CELLS:
        return None
    # The image border is not the skull's outline: only the region's inner edges count.
    edge = region & ~scipy.ndimage.binary_erosion(region, border_value=1)
    rr, cc = np.nonzero(edge)
    if rr.size < 20:
        return None
    step = max(1, rr.size // MAX_CONTOUR_POINTS)
    # Cell centres of the coarse grid in full-frame pixels (Pillow aligns centres), then mm.
    rows = (rr[::step] + 0.5) * fh / probs.shape[1] - 0.5
    cols = (cc[::step] + 0.5) * fw / probs.shape[2] - 0.5
    pts = np.stack([rows * full_sp[0], cols * full_sp[1]], axis=1)
    ellipse = fit_ellipse(pts)
    for _ in range(2):
        if ellipse is None:
            return None
        dev = np.abs(ellipse.normalised_radius(pts) - 1)
        keep = dev <= 3 * np.median(dev) + 0.01
        if keep.sum() < 20:
            return None
        ellipse = fit_ellipse(pts[keep])
    if ellipse is None or not np.isfinite(ellipse.semi_major):
        return None
    dev = np.abs(ellipse.normalised_radius(pts) - 1)
    mask_hc = ramanujan(ellipse.semi_major, ellipse.semi_minor)
    agree, shift = 1.0, 0.0
    if ridge:
        img = gray(frame)
        for reach in RIDGE_PASSES:
            refined = skull_ridge(img, full_sp, ellipse, reach)
            if refined is None:
                agree = 0.0
                break
            ellipse, agree = refined
        shift = abs(ramanujan(ellipse.semi_major, ellipse.semi_minor) / mask_hc - 1)
    per = ellipse.perimeter_points() / np.asarray(full_sp)
    # Within a margin of the frame counts as cut: the network tends to shrink a cut head to an
    # ellipse just inside the frame rather than run its region along the border.
    margin = CUT_OFF_MARGIN * math.sqrt(ellipse.semi_major * ellipse.semi_minor) / min(full_sp)
    outside = (
        (per[:, 0] < margin)
        | (per[:, 0] > fh - 1 - margin)
        | (per[:, 1] < margin)
        | (per[:, 1] > fw - 1 - margin)
    )
    # A head cut by the frame may still yield an ellipse inside it (fitted to the visible arc or
    # an inner ring): the region running along the frame's border says so too.
    border = int(region[0].sum() + region[-1].sum() + region[:, 0].sum() + region[:, -1].sum())
    on_border = border / max(border + int(edge.sum()), 1)
    ellipse_area = math.pi * ellipse.semi_major * ellipse.semi_minor
    return HeadView(
        frame=frame,
        ellipse=ellipse,
        raw_hc_mm=ramanujan(ellipse.semi_major, ellipse.semi_minor),
        residual=float(np.sqrt(np.mean(dev**2))),
        mean_p=float(probs[1][region].mean()),
        area_ratio=float(region.sum() * sp[0] * sp[1] / ellipse_area),
        cut_off=float(max(outside.mean(), on_border)),
        ridge_agree=agree,
        ridge_shift=shift,
    )


class FetalBiometryModule(SegmentingModule, name=NAME, version=VERSION, exam_types=EXAM_TYPES):
    """Fetal head biometry with a gestational-age estimate and a dates comparison."""

    def __init__(self, card: LoadedCard, runtime: object | None = None) -> None:
        super().__init__(card, runtime)
        p = card.parameters
        self.seg_threshold = float(p["segment_threshold"])
        self.ridge = bool(p.get("skull_ridge", True))
        self.hc_a, self.hc_b = p["hc_calibration"]
        self.conf_w = np.asarray(p["confidence_logistic"], dtype=float)
        t = card.raw["thresholds"]
        self.low_conf = float(t["low_confidence_below"])
        self.max_residual = float(t["poor_fit_residual_above"])
        self.max_cut_off = float(t["cut_off_perimeter_share_above"])
        self.aspect = tuple(t["plausible_minor_major_ratio"])
        self.hc_range = tuple(t["plausible_hc_mm"])
        self.min_mean_p = float(t["plausible_mean_probability_at_least"])

    def _probabilities(self, frame: ModuleFrame) -> np.ndarray:
        px = gray(frame).astype(np.uint8)
        scale = min(1.0, WORK_MAX_SIDE / max(px.shape))
        work = (max(round(px.shape[0] * scale), 1), max(round(px.shape[1] * scale), 1))
        return self.segmenter.probabilities(px, work)

    def measure(self, frame: ModuleFrame) -> HeadView | None:
        """Return the head found in one frame, or None."""
        return find_head(frame, self._probabilities(frame), self.seg_threshold, self.ridge)

    def evidence(self, frame: ModuleFrame, probs: np.ndarray | None = None) -> Evidence:
        """Whether the frame shows a fetal head by the module's own look, whatever the view
        check said: an elliptic head region on a skull ring, of a plausible size."""
        probs = self._probabilities(frame) if probs is None else probs
        known = spacing_of(frame) is not None
        nominal = NOMINAL_WIDTH_MM / frame.pixels.shape[1]
        judged = frame if known else replace(frame, spacing_mm=(nominal, nominal))
        return self._judged(find_head(judged, probs, self.seg_threshold, ridge=True), known)

    def _judged(self, view: HeadView | None, known: bool) -> Evidence:
        if view is None:
            return Evidence(False, "no head region")
        return judge_head(
            view.mean_p,
            view.ellipse.semi_minor / view.ellipse.semi_major,
            view.residual,
            view.area_ratio,
            view.ridge_agree,
            self.hc_mm(view) if known else None,
        )

    def confidence(self, view: HeadView) -> float:
        """Return the calibrated probability that the HC is within +-3 mm of an expert's."""
        return float(sigmoid(self.conf_w[0] + np.dot(self.conf_w[1:], view.features())))

    def hc_mm(self, view: HeadView) -> float:
        """Return the calibrated head circumference of a view."""
        return float(self.hc_a * view.raw_hc_mm + self.hc_b)

    def concerns(self, view: HeadView) -> list[str]:
        """Return why a measurement should not be trusted on its own (empty when none)."""
        out = []
        if view.cut_off > self.max_cut_off:
            out.append("head cut off by the image edge")
        if view.residual > self.max_residual:
            out.append("poor ellipse fit")
        ratio = view.ellipse.semi_minor / view.ellipse.semi_major
        hc = self.hc_mm(view)
        if (
            not self.aspect[0] <= ratio <= self.aspect[1]
            or not self.hc_range[0] <= hc <= self.hc_range[1]
            or view.mean_p < self.min_mean_p
        ):
            out.append("view not a fetal head")
        return out

    def run(self, frames: Sequence[ModuleFrame]) -> ModuleOutput:
        """Measure the fetal head and report HC, BPD, OFD and gestational age findings."""
        usable = [f for f in frames if spacing_of(f) is not None] or list(frames)
        if len(usable) > MAX_FRAMES:
            usable = [usable[i] for i in np.linspace(0, len(usable) - 1, MAX_FRAMES).astype(int)]
        views, absent, shown = [], [], 0
        for frame in usable:
            probs = self._probabilities(frame)
            view = find_head(frame, probs, self.seg_threshold, self.ridge)
            # Defence in depth: the view check may err, so the module reports only on frames
            # where it sees a fetal head itself. With spacing and the skull ring on, the head it
            # would measure is the one the evidence judges: one fit, not two.
            if self.ridge and spacing_of(frame) is not None:
                evidence = self._judged(view, known=True)
            else:
                evidence = self.evidence(frame, probs)
            if not evidence.present:
                absent.append(evidence.reason)
                continue
            shown += 1
            if view is not None:
                views.append(view)
        if not views:
            if absent and not shown:
                return self._not_measurable(frames, f"not a fetal head: {absent[0]}", True)
            spaced = any(spacing_of(f) is not None for f in frames)
            return self._not_measurable(
                frames, "fetal head not found" if spaced else "no pixel spacing"
            )
        scored = [(self.confidence(v), v) for v in views]
        conf, best = max(scored, key=lambda cv: (not self.concerns(cv[1]), cv[0]))
        return self._report(best, conf, frames)

    def _not_measurable(
        self, frames: Sequence[ModuleFrame], reason: str, not_this_anatomy: bool = False
    ) -> ModuleOutput:
        finding = ModuleFinding(
            code="fetal-biometry-not-measurable",
            code_system=FINDING_SYSTEM,
            display=f"Fetal head biometry not measurable ({reason})",
            value=None,
            unit="",
            confidence=0.0,
            low_confidence=True,
            abnormal=False,
            sop_instance_uid=frames[0].sop_instance_uid if frames else "",
            attributes={"reason": reason, "not_this_anatomy": str(not_this_anatomy).lower()},
        )
        return ModuleOutput(NAME, VERSION, [finding], {}, {"frames": len(frames)})

    def _report(self, view: HeadView, conf: float, frames: Sequence[ModuleFrame]) -> ModuleOutput:
        hc = self.hc_mm(view)
        k = hc / view.raw_hc_mm
        bpd, ofd = 2 * view.ellipse.semi_minor * k, 2 * view.ellipse.semi_major * k
        ga = hadlock_ga_weeks(hc)
        ga_2sd = hadlock_2sd_weeks(ga)
        concerns = self.concerns(view)
        low = conf < self.low_conf or bool(concerns)
        uid = view.frame.sop_instance_uid
        common = {
            "confidence_means": "P(|HC - expert HC| <= 3 mm)",
            "cut_off_by_image_edge": str(view.cut_off > self.max_cut_off).lower(),
            "ellipse_fit_residual": f"{view.residual:.3f}",
        }
        if concerns:
            common["low_confidence_reasons"] = "; ".join(concerns)

        def measured(code: str, display: str, value: float, unit: str, **extra: str):
            return ModuleFinding(
                code=code,
                code_system=FINDING_SYSTEM,
                display=display,
                value=round(value, 1),
                unit=unit,
                confidence=round(conf, 4),
                low_confidence=low,
                abnormal=False,
                sop_instance_uid=uid,
                attributes={**common, **extra},
            )

        ga_attrs = {
            "formula": "Hadlock 1984, HC",
            "formula_2sd_weeks": f"{ga_2sd:.1f}",
            "within_formula_range": str(
                HADLOCK_RANGE_WEEKS[0] <= ga <= HADLOCK_RANGE_WEEKS[1]
            ).lower(),
        }
        app_ga = next(
            (f.app_gestational_age_weeks for f in frames if f.app_gestational_age_weeks), None
        )
        disagrees = False
        if app_ga is not None:
            # Beyond the formula's own +-2 SD the dates and the head size do not agree: wrong
            # dates, or a head growing out of line; either way an expert should look.
            disagrees = abs(ga - app_ga) > ga_2sd
            ga_attrs["app_gestational_age_weeks"] = f"{app_ga:.1f}"
            ga_attrs["difference_weeks"] = f"{ga - app_ga:+.1f}"
            ga_attrs["disagrees_with_app"] = str(disagrees).lower()
        ga_finding = measured(
            "fetal-gestational-age", "Gestational age by head circumference", ga, "wk", **ga_attrs
        )
        if disagrees:
            ga_finding = ModuleFinding(**{**ga_finding.__dict__, "abnormal": True})
        findings = [
            measured("fetal-head-circumference", "Fetal head circumference", hc, "mm"),
            measured("fetal-biparietal-diameter", "Fetal biparietal diameter", bpd, "mm"),
            measured(
                "fetal-occipitofrontal-diameter", "Fetal occipito-frontal diameter", ofd, "mm"
            ),
            ga_finding,
        ]
        details = {
            "frames": len(frames),
            "hc_mm": hc,
            "bpd_mm": bpd,
            "ofd_mm": ofd,
            "ga_weeks": ga,
            "confidence": conf,
            "concerns": concerns,
            "raw_hc_mm": view.raw_hc_mm,
            "calibration_scale": k,
            "ellipse_mm": view.ellipse.describe(),
            "spacing_mm": list(spacing_of(view.frame) or ()),
            "overlay_frame": {"sop_instance_uid": uid, "frame_index": view.frame.frame_index},
            "graphics": self._graphics(view, k),
        }
        overlay = self._overlay(view, k, hc, ga, conf)
        return ModuleOutput(NAME, VERSION, findings, {f"{NAME}.png": overlay}, details)

    def _graphics(self, view: HeadView, k: float) -> list[dict[str, Any]]:
        """Return the HC ellipse and the BPD / OFD axes in pixels, for the DICOM SR."""
        sp = np.asarray(spacing_of(view.frame) or (1.0, 1.0))
        e = view.ellipse
        minor = np.array([-e.axis[1], e.axis[0]])
        major_ends = np.stack(
            [e.centre - e.axis * e.semi_major * k, e.centre + e.axis * e.semi_major * k]
        )
        minor_ends = np.stack(
            [e.centre - minor * e.semi_minor * k, e.centre + minor * e.semi_minor * k]
        )
        return [
            graphic(
                "fetal-head-circumference",
                "ELLIPSE",
                np.vstack([major_ends, minor_ends]) / sp,
                view.frame,
            ),
            graphic("fetal-biparietal-diameter", "POLYLINE", minor_ends / sp, view.frame),
            graphic("fetal-occipitofrontal-diameter", "POLYLINE", major_ends / sp, view.frame),
        ]

    def _overlay(self, view: HeadView, k: float, hc: float, ga: float, conf: float) -> bytes:
        sp = np.asarray(spacing_of(view.frame) or (1.0, 1.0))
        img, draw = canvas(gray(view.frame).astype(np.uint8))
        e = view.ellipse
        per = e.perimeter_points(scale=k) / sp
        draw.line([(p[1], p[0]) for p in np.vstack([per, per[:1]])], fill=(0, 255, 0), width=2)
        minor = np.array([-e.axis[1], e.axis[0]])
        for vec, half in ((e.axis, e.semi_major * k), (minor, e.semi_minor * k)):
            p0, p1 = (e.centre - vec * half) / sp, (e.centre + vec * half) / sp
            draw.line([(p0[1], p0[0]), (p1[1], p1[0])], fill=(255, 220, 0), width=1)
        draw.text((4, 4), f"HC {hc:.0f} mm  GA {ga:.1f} wk  conf {conf:.2f}", fill=(255, 255, 0))
        return png_bytes(img)


def load(runtime: object | None = None) -> FetalBiometryModule:
    """Load the fetal-biometry module and its network from the card."""
    return FetalBiometryModule(load_card(NAME, VERSION, runtime), runtime)
