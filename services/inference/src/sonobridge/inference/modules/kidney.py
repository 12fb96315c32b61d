"""Kidney: long-axis length in mm and cortical echogenicity relative to adjacent parenchyma."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy

from sonobridge.inference.modules.base import ModuleFinding, ModuleFrame, ModuleOutput
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
    spacing_of,
)
from sonobridge.inference.modules.segmentation import SegmentingModule

NAME = "kidney"
VERSION = "1.0.0"
EXAM_TYPES = frozenset({"kidney"})
# Local finding codes and their UCUM units; modules.terminology binds them to SNOMED CT.
CODES = {
    "kidney-length": "mm",
    "kidney-cortical-echogenicity-ratio": "1",
    "kidney-not-measurable": "",
}
CLASSES = ("background", "kidney")
CORTEX_MM = (1.5, 6.0)
REFERENCE_MM = (4.0, 14.0)
MAX_FRAMES = 4
# Capsule search (geometry, not fitted): adult kidneys are 60-140 mm long, 40-60% as wide.
CAPSULE_SMOOTH_MM = 0.5
CAPSULE_SIDE_MM = 1.2
CAPSULE_PERIMETER_POINTS = 48
CAPSULE_MIN_VISIBLE = 0.7
CAPSULE_REFINE_STARTS = 16
CAPSULE_CONTRAST_CAP = 15.0
CAPSULE_CENTRE_MM = 12.0
CAPSULE_REFINE_ROUNDS = 4
SEMI_MINOR_MM = (12.0, 36.0)
ASPECT = (1.5, 3.0)


@dataclass
class KidneyView:
    """The kidney found in one frame: mask, axis, raw length and grey-level contrast."""

    frame: ModuleFrame
    mask: np.ndarray
    centre: np.ndarray
    axis: np.ndarray
    raw_length_mm: float
    contrast: float
    touches_edge: bool
    mean_p: float
    ring_contrast: float = 0.0
    capsule: Capsule | None = None


def _band(mask: np.ndarray, spacing: tuple[float, float], lo: float, hi: float, inner: bool):
    px = float(np.mean(spacing))
    it_lo, it_hi = max(round(lo / px), 1), max(round(hi / px), 2)
    if inner:
        return scipy.ndimage.binary_erosion(mask, iterations=it_lo) & ~scipy.ndimage.binary_erosion(
            mask, iterations=it_hi
        )
    return scipy.ndimage.binary_dilation(mask, iterations=it_hi) & ~scipy.ndimage.binary_dilation(
        mask, iterations=it_lo
    )


@dataclass(frozen=True)
class Capsule:
    """The renal capsule as an ellipse in mm (row, col): centre, semi-axes, major-axis angle."""

    centre: np.ndarray
    semi_major: float
    semi_minor: float
    axis: np.ndarray
    ring_contrast: float

    def describe(self) -> dict[str, Any]:
        """Return the ellipse as JSON (mm; centre and axis as row, col)."""
        return {
            "centre": [float(v) for v in self.centre],
            "semi_major": self.semi_major,
            "semi_minor": self.semi_minor,
            "axis": [float(v) for v in self.axis],
        }

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> Capsule:
        """Rebuild a capsule from describe()."""
        return cls(
            np.array(d["centre"]), d["semi_major"], d["semi_minor"], np.array(d["axis"]), 0.0
        )

    def inside(self, shape: tuple[int, int], spacing: tuple[float, float]) -> np.ndarray:
        """Return the pixel mask within the ellipse."""
        rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]]
        d = np.stack([rr * spacing[0] - self.centre[0], cc * spacing[1] - self.centre[1]])
        u = self.axis[0] * d[0] + self.axis[1] * d[1]
        v = -self.axis[1] * d[0] + self.axis[0] * d[1]
        return (u / self.semi_major) ** 2 + (v / self.semi_minor) ** 2 <= 1.0


def _ring_points(params: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return perimeter points and outward unit normals (mm) of ellipses (cr, cc, a, b, theta)."""
    cr, cc, a, b, th = (params[:, i : i + 1] for i in range(5))
    u, v = a * np.cos(t), b * np.sin(t)
    ax_r, ax_c = np.sin(th), np.cos(th)
    pr = cr + u * ax_r + v * ax_c
    pc = cc + u * ax_c - v * ax_r
    nu, nv = np.cos(t) / a, np.sin(t) / b
    nr, nc = nu * ax_r + nv * ax_c, nu * ax_c - nv * ax_r
    norm = np.hypot(nr, nc)
    return np.stack([pr, pc]), np.stack([nr / norm, nc / norm])


def ring_scores(
    g: np.ndarray, fov: np.ndarray, spacing: tuple[float, float], params: np.ndarray
) -> np.ndarray:
    """Score ellipses by how much brighter their perimeter is than both sides of it.

    A thin bright ring (the capsule) scores high; a step edge (sinus, organ boundary) scores
    about zero, and a straight reflector matches only a short stretch of any ellipse.
    """
    t = np.linspace(0, 2 * np.pi, CAPSULE_PERIMETER_POINTS, endpoint=False)[None, :]
    pts, normals = _ring_points(params, t)
    sp = np.asarray(spacing)[:, None, None]
    offsets = (0.0, -CAPSULE_SIDE_MM, CAPSULE_SIDE_MM)
    coords = np.concatenate([(pts + o * normals) / sp for o in offsets], axis=1)
    flat = coords.reshape(2, -1)
    vals = scipy.ndimage.map_coordinates(g, flat, order=1, cval=0.0).reshape(3, *pts.shape[1:])
    ok = scipy.ndimage.map_coordinates(fov.astype(np.float32), flat, order=0, cval=0.0)
    ok = ok.reshape(3, *pts.shape[1:]).min(axis=0) > 0
    contrast = vals[0] - 0.5 * (vals[1] + vals[2])
    n = ok.sum(axis=1)
    # A clipped mean: the whole ring must be bright, so neither a straight bright reflector
    # touching a short arc nor a smaller ellipse touching the capsule on one side can carry it.
    clipped = np.clip(contrast, -CAPSULE_CONTRAST_CAP, CAPSULE_CONTRAST_CAP)
    score = np.where(ok, clipped, 0).sum(axis=1) / np.maximum(n, 1)
    return np.where(n >= CAPSULE_MIN_VISIBLE * t.shape[1], score, -np.inf)


def _grid(centre: np.ndarray, half: np.ndarray, steps: np.ndarray) -> np.ndarray:
    axes = [np.arange(c - h, c + h + 1e-9, s) for c, h, s in zip(centre, half, steps, strict=True)]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _refine(g, fov, spacing, best: np.ndarray, best_score: float) -> tuple[np.ndarray, float]:
    step = np.array([2.0, 2.0, 2.0, 1.0, 0.08])
    for _ in range(CAPSULE_REFINE_ROUNDS):
        trial = _grid(best, step, step)
        trial = trial[(trial[:, 3] >= SEMI_MINOR_MM[0] * 0.8) & (trial[:, 2] >= trial[:, 3])]
        sc = ring_scores(g, fov, spacing, trial)
        if sc.max() > best_score:
            best, best_score = trial[int(np.argmax(sc))], float(sc.max())
        step = step / 2
    return best, best_score


def fit_capsule(
    img: np.ndarray, spacing: tuple[float, float], near_mm: np.ndarray, fov: np.ndarray
) -> Capsule | None:
    """Search ellipses near the network's kidney for the brightest ring: coarse grid, refine."""
    px = float(np.mean(spacing))
    g = scipy.ndimage.gaussian_filter(img, max(CAPSULE_SMOOTH_MM / px, 0.7))
    # (centre row, centre col, semi-major, semi-minor, angle); sizes span adult kidneys.
    b_mid = sum(SEMI_MINOR_MM) / 2
    start = np.array([near_mm[0], near_mm[1], b_mid * 2.2, b_mid, 0.0])
    half = np.array([CAPSULE_CENTRE_MM, CAPSULE_CENTRE_MM, 0, 0, 0.3])
    steps = np.array([4.0, 4.0, 1, 1, 0.15])
    coarse = _grid(start, half, steps)
    sizes = [
        (r * bb, bb)
        for bb in np.arange(SEMI_MINOR_MM[0], SEMI_MINOR_MM[1] + 1e-9, 2.0)
        for r in np.arange(ASPECT[0], ASPECT[1] + 1e-9, 0.25)
    ]
    params = np.concatenate(
        [
            np.c_[
                coarse[:, :2],
                np.full((len(coarse), 1), a),
                np.full((len(coarse), 1), bb),
                coarse[:, 4:],
            ]
            for a, bb in sizes
        ]
    )
    scores = ring_scores(g, fov, spacing, params)
    if not np.isfinite(scores.max()):
        return None
    # Refine the few best coarse rings; the coarse winner is not always the right ring.
    best, best_score = params[0], -np.inf
    for k in np.argsort(scores)[::-1][:CAPSULE_REFINE_STARTS]:
        if not np.isfinite(scores[k]):
            break
        found, score = _refine(g, fov, spacing, params[k], float(scores[k]))
        if score > best_score:
            best, best_score = found, score
    cr, cc, a, b, th = best
    return Capsule(
        centre=np.array([cr, cc]),
        semi_major=float(a),
        semi_minor=float(b),
        axis=np.array([np.sin(th), np.cos(th)]),
        ring_contrast=best_score,
    )


def find_kidney(frame: ModuleFrame, probs: np.ndarray, threshold: float) -> KidneyView | None:
    """Locate the kidney with the network, fit its capsule, and measure length and contrast."""
    sp = spacing_of(frame)
    if sp is None:
        return None
    img = gray(frame)
    mask = probs[1] >= threshold
    labels, n = scipy.ndimage.label(mask)
    if n == 0:
        return None
    sizes = scipy.ndimage.sum(mask, labels, range(1, n + 1))
    k = int(np.argmax(sizes)) + 1
    region = labels == k
    if region.sum() < 50:
        return None
    rr, cc = np.nonzero(region)
    # The network finds roughly where the kidney is; the bright capsule says exactly where.
    near = np.array(
        [
            np.average(rr, weights=probs[1][region]) * sp[0],
            np.average(cc, weights=probs[1][region]) * sp[1],
        ]
    )
    fov = scipy.ndimage.binary_erosion(img > 2, iterations=3)
    capsule = fit_capsule(img, sp, near, fov)
    if capsule is None:
        return None
    mask = capsule.inside(img.shape, sp)
    if mask.sum() < 50:
        return None
    cortex = _band(mask, sp, *CORTEX_MM, inner=True) & fov
    ref = _band(mask, sp, *REFERENCE_MM, inner=False) & fov
    rows = np.nonzero(mask.any(axis=1))[0]
    ref[: rows[0]] = False
    ref[rows[-1] :] = False
    contrast = (
        float(np.median(img[cortex]) - np.median(img[ref]))
        if cortex.sum() > 20 and ref.sum() > 20
        else float("nan")
    )
    return KidneyView(
        frame=frame,
        mask=mask,
        centre=capsule.centre,
        axis=capsule.axis,
        raw_length_mm=2 * capsule.semi_major,
        contrast=contrast,
        touches_edge=bool((mask & ~fov).any()),
        mean_p=float(probs[1][mask].mean()),
        ring_contrast=capsule.ring_contrast,
        capsule=capsule,
    )


class KidneyModule(SegmentingModule, name=NAME, version=VERSION, exam_types=EXAM_TYPES):
    """Kidney length and cortical echogenicity with small and echogenic calls."""

    def __init__(self, card: LoadedCard, runtime: object | None = None) -> None:
        super().__init__(card, runtime)
        p = card.parameters
        self.seg_threshold = float(p["segment_threshold"])
        self.len_a, self.len_b = p["length_calibration"]
        self.len_s0, self.len_edge = float(p["length_sigma_mm"]), float(p["length_sigma_edge_mm"])
        self.len_ring_k = float(p["length_sigma_ring_k"])
        self.echo_a, self.echo_b = p["echo_calibration"]
        self.echo_s = float(p["echo_sigma"])
        t = card.raw["thresholds"]
        self.small_mm = float(t["small_below_mm"])
        self.echogenic_ratio = float(t["echogenic_ratio_at_least"])
        self.low_conf = float(t["low_confidence_below"])

    def views(self, frames: Sequence[ModuleFrame]) -> list[KidneyView]:
        """Return the kidney found in each frame where one is found."""
        out = []
        usable = [f for f in frames if spacing_of(f) is not None]
        # The capsule search costs most of the time: a few frames spread over the cine suffice.
        if len(usable) > MAX_FRAMES:
            usable = [usable[i] for i in np.linspace(0, len(usable) - 1, MAX_FRAMES).astype(int)]
        for f in usable:
            probs = self.segmenter.probabilities(gray(f).astype(np.uint8))
            v = find_kidney(f, probs, self.seg_threshold)
            if v is not None:
                out.append(v)
        return out

    def estimate(self, views: list[KidneyView]) -> dict[str, Any]:
        """Pool views: median over fully visible kidneys, error model, call probabilities."""
        whole = [v for v in views if not v.touches_edge] or views
        best = max(whole, key=lambda v: v.ring_contrast)
        length = self.len_a * float(np.median([v.raw_length_mm for v in whole])) + self.len_b
        ring = float(np.median([v.ring_contrast for v in whole]))
        sigma_len = float(
            np.sqrt(
                self.len_s0**2
                + (self.len_ring_k / max(ring, 0.5)) ** 2
                + (self.len_edge * best.touches_edge) ** 2
            )
        )
        contrasts = [v.contrast for v in views if np.isfinite(v.contrast)]
        log_ratio = (
            self.echo_a * float(np.median(contrasts)) + self.echo_b if contrasts else float("nan")
        )
        p_small = float(normal_cdf((self.small_mm - length) / sigma_len))
        p_echo = (
            float(normal_cdf((log_ratio - np.log(self.echogenic_ratio)) / self.echo_s))
            if contrasts
            else 0.5
        )
        return {
            "best": best,
            "ring_contrast": ring,
            "length_mm": length,
            "sigma_mm": sigma_len,
            "p_small": p_small,
            "echo_ratio": float(np.exp(log_ratio)) if contrasts else None,
            "p_echogenic": p_echo,
        }

    def run(self, frames: Sequence[ModuleFrame]) -> ModuleOutput:
        """Measure the kidney and report length and echogenicity findings."""
        views = self.views(frames)
        if not views:
            reason = (
                "no pixel spacing"
                if all(spacing_of(f) is None for f in frames)
                else ("kidney not found")
            )
            finding = ModuleFinding(
                code="kidney-not-measurable",
                code_system=FINDING_SYSTEM,
                display=f"Kidney not measurable ({reason})",
                value=None,
                unit="",
                confidence=0.0,
                low_confidence=True,
                abnormal=False,
                sop_instance_uid=frames[0].sop_instance_uid if frames else "",
                attributes={"reason": reason},
            )
            return ModuleOutput(NAME, VERSION, [finding], {}, {"frames": len(frames)})
        est = self.estimate(views)
        best: KidneyView = est["best"]
        uid = best.frame.sop_instance_uid
        small = est["p_small"] >= 0.5
        c_small = call_confidence(est["p_small"])
        findings = [
            ModuleFinding(
                code="kidney-length",
                code_system=FINDING_SYSTEM,
                display="Kidney long-axis length",
                value=round(est["length_mm"], 1),
                unit="mm",
                confidence=round(c_small, 4),
                low_confidence=c_small < self.low_conf or best.touches_edge,
                abnormal=small,
                sop_instance_uid=uid,
                attributes={
                    "small": str(small).lower(),
                    "threshold_mm": str(self.small_mm),
                    "sigma_mm": f"{est['sigma_mm']:.1f}",
                    "cut_off_by_image_edge": str(best.touches_edge).lower(),
                },
            )
        ]
        if est["echo_ratio"] is not None:
            echogenic = est["p_echogenic"] >= 0.5
            c_echo = call_confidence(est["p_echogenic"])
            findings.append(
                ModuleFinding(
                    code="kidney-cortical-echogenicity-ratio",
                    code_system=FINDING_SYSTEM,
                    display="Renal cortical echogenicity relative to adjacent parenchyma",
                    value=round(est["echo_ratio"], 3),
                    unit="1",
                    confidence=round(c_echo, 4),
                    low_confidence=c_echo < self.low_conf,
                    abnormal=echogenic,
                    sop_instance_uid=uid,
                    attributes={
                        "echogenic": str(echogenic).lower(),
                        "threshold_ratio": str(self.echogenic_ratio),
                    },
                )
            )
        details = {
            "frames": len(frames),
            "measured_frames": len(views),
            "length_mm": est["length_mm"],
            "p_small": est["p_small"],
            "echo_ratio": est["echo_ratio"],
            "p_echogenic": est["p_echogenic"],
            "overlay_frame": {"sop_instance_uid": uid, "frame_index": best.frame.frame_index},
            "ring_contrast": est["ring_contrast"],
            "capsule_mm": best.capsule.describe() if best.capsule else None,
            "graphics": [
                graphic("kidney-length", "POLYLINE", self._length_line(best, est), best.frame)
            ],
        }
        return ModuleOutput(
            NAME, VERSION, findings, {f"{NAME}.png": self._overlay(best, est)}, details
        )

    def _length_line(self, v: KidneyView, est: dict[str, Any]) -> np.ndarray:
        """Return the reported length's end points in pixels (row, column)."""
        sp = np.asarray(spacing_of(v.frame) or (1.0, 1.0))
        half = est["length_mm"] / 2
        return np.stack([v.centre - v.axis * half, v.centre + v.axis * half]) / sp

    def _overlay(self, v: KidneyView, est: dict[str, Any]) -> bytes:
        img, draw = canvas(gray(v.frame).astype(np.uint8))
        edge = v.mask & ~scipy.ndimage.binary_erosion(v.mask)
        rr, cc = np.nonzero(edge)
        draw.point(list(zip(cc.tolist(), rr.tolist(), strict=True)), fill=(0, 255, 0))
        (r0, c0), (r1, c1) = self._length_line(v, est)
        draw.line([(c0, r0), (c1, r1)], fill=(255, 220, 0), width=2)
        ratio = est["echo_ratio"]
        label = f"L {est['length_mm']:.0f} mm" + (f"  echo x{ratio:.2f}" if ratio else "")
        draw.text((4, 4), label, fill=(255, 255, 0))
        return png_bytes(img)


def load(runtime: object | None = None) -> KidneyModule:
    """Load the kidney module and its network from the card."""
    return KidneyModule(load_card(NAME, VERSION, runtime), runtime)
