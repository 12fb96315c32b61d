"""Kidney: long-axis length in mm and cortical echogenicity relative to adjacent parenchyma."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from sonobridge.inference.modules.base import ModuleFinding, ModuleFrame, ModuleOutput
from sonobridge.inference.modules.common import (
    FINDING_SYSTEM,
    LoadedCard,
    call_confidence,
    canvas,
    gray,
    load_card,
    normal_cdf,
    png_bytes,
    spacing_of,
)
from sonobridge.inference.modules.segmentation import PixelSegmenter

NAME = "kidney"
VERSION = "1.0.0"
CLASSES = ("background", "kidney")
CORTEX_MM = (1.5, 6.0)
REFERENCE_MM = (4.0, 14.0)


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


def _band(mask: np.ndarray, spacing: tuple[float, float], lo: float, hi: float, inner: bool):
    px = float(np.mean(spacing))
    it_lo, it_hi = max(round(lo / px), 1), max(round(hi / px), 2)
    if inner:
        return ndimage.binary_erosion(mask, iterations=it_lo) & ~ndimage.binary_erosion(
            mask, iterations=it_hi
        )
    return ndimage.binary_dilation(mask, iterations=it_hi) & ~ndimage.binary_dilation(
        mask, iterations=it_lo
    )


def find_kidney(frame: ModuleFrame, probs: np.ndarray, threshold: float) -> KidneyView | None:
    """Segment the largest kidney region and measure its long axis and cortex contrast."""
    sp = spacing_of(frame)
    if sp is None:
        return None
    img = gray(frame)
    mask = probs[1] >= threshold
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    k = int(np.argmax(sizes)) + 1
    mask = ndimage.binary_fill_holes(ndimage.binary_closing(labels == k, iterations=2))
    if mask.sum() < 50:
        return None
    rr, cc = np.nonzero(mask)
    pts = np.c_[rr * sp[0], cc * sp[1]]
    centre = pts.mean(0)
    cov = np.cov((pts - centre).T)
    vals, vecs = np.linalg.eigh(cov)
    # A filled ellipse has variance a^2/4 along its major axis, so length = 4 sqrt(lambda).
    raw_length = 4 * float(np.sqrt(max(vals[-1], 0)))
    fov = ndimage.binary_erosion(img > 2, iterations=3)
    cortex = _band(mask, sp, *CORTEX_MM, inner=True) & fov
    ref = _band(mask, sp, *REFERENCE_MM, inner=False) & fov
    rows = (rr.min(), rr.max())
    ref[: rows[0]] = False
    ref[rows[1] :] = False
    contrast = (
        float(np.median(img[cortex]) - np.median(img[ref]))
        if cortex.sum() > 20 and ref.sum() > 20
        else float("nan")
    )
    return KidneyView(
        frame=frame,
        mask=mask,
        centre=centre,
        axis=vecs[:, -1],
        raw_length_mm=raw_length,
        contrast=contrast,
        touches_edge=bool((mask & ~fov).any()),
        mean_p=float(probs[1][mask].mean()),
    )


class KidneyModule:
    """Kidney length and cortical echogenicity with small and echogenic calls."""

    name = NAME
    version = VERSION
    exam_types = frozenset({"kidney"})

    def __init__(self, card: LoadedCard, runtime: object | None = None) -> None:
        if card.onnx is None:
            raise ValueError("kidney card has no model.onnx")
        self.card = card.raw
        p = card.parameters
        self.segmenter = PixelSegmenter(card.onnx, card.raw["input"], runtime)
        self.seg_threshold = float(p["segment_threshold"])
        self.len_a, self.len_b = p["length_calibration"]
        self.len_s0, self.len_edge = float(p["length_sigma_mm"]), float(p["length_sigma_edge_mm"])
        self.echo_a, self.echo_b = p["echo_calibration"]
        self.echo_s = float(p["echo_sigma"])
        t = card.raw["thresholds"]
        self.small_mm = float(t["small_below_mm"])
        self.echogenic_ratio = float(t["echogenic_ratio_at_least"])
        self.low_conf = float(t["low_confidence_below"])

    def views(self, frames: Sequence[ModuleFrame]) -> list[KidneyView]:
        """Return the kidney found in each frame where one is found."""
        out = []
        for f in frames:
            if spacing_of(f) is None:
                continue
            probs = self.segmenter.probabilities(gray(f).astype(np.uint8))
            v = find_kidney(f, probs, self.seg_threshold)
            if v is not None:
                out.append(v)
        return out

    def estimate(self, views: list[KidneyView]) -> dict[str, Any]:
        """Pool views: longest fully visible kidney, median contrast, call probabilities."""
        whole = [v for v in views if not v.touches_edge] or views
        best = max(whole, key=lambda v: v.raw_length_mm)
        length = self.len_a * float(np.median([v.raw_length_mm for v in whole])) + self.len_b
        sigma_len = float(np.hypot(self.len_s0, self.len_edge * best.touches_edge))
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
        }
        return ModuleOutput(
            NAME, VERSION, findings, {f"{NAME}.png": self._overlay(best, est)}, details
        )

    def _overlay(self, v: KidneyView, est: dict[str, Any]) -> bytes:
        sp = spacing_of(v.frame) or (1.0, 1.0)
        img, draw = canvas(gray(v.frame).astype(np.uint8))
        edge = v.mask & ~ndimage.binary_erosion(v.mask)
        rr, cc = np.nonzero(edge)
        draw.point(list(zip(cc.tolist(), rr.tolist(), strict=True)), fill=(0, 255, 0))
        half = est["length_mm"] / 2
        p0 = v.centre - v.axis * half
        p1 = v.centre + v.axis * half
        draw.line(
            [(p0[1] / sp[1], p0[0] / sp[0]), (p1[1] / sp[1], p1[0] / sp[0])],
            fill=(255, 220, 0),
            width=2,
        )
        ratio = est["echo_ratio"]
        label = f"L {est['length_mm']:.0f} mm" + (f"  echo x{ratio:.2f}" if ratio else "")
        draw.text((4, 4), label, fill=(255, 255, 0))
        return png_bytes(img)


def load(runtime: object | None = None) -> KidneyModule:
    """Load the kidney module and its network from the card."""
    return KidneyModule(load_card(NAME, VERSION, runtime), runtime)
