"""Seeded acquisition faults injected into real grayscale frames, to test detectors on tissue."""

from __future__ import annotations

import math
from enum import StrEnum

import numpy as np
from scipy import ndimage

# Display dynamic range the gain shift is expressed against: real scanners log-compress
# 50-65 dB into 0-255, so a gain drop of G dB darkens every pixel by about G/55 of full scale.
DYNAMIC_RANGE_DB = 55.0


class InjectedFault(StrEnum):
    """Faults the injector makes; each maps to the quality label a detector should give."""

    LOW_GAIN = "low_gain"
    LOST_CONTACT_PARTIAL = "lost_contact_partial"
    LOST_CONTACT_FULL = "lost_contact_full"
    DEAD_ELEMENTS = "dead_elements"
    MOTION_BLUR = "motion_blur"
    WRONG_DEPTH = "wrong_depth"

    @property
    def quality_label(self) -> str:
        """The image-quality label of a frame with this fault."""
        return "lost_contact" if self.value.startswith("lost_contact") else self.value


def _field_of_view(gray: np.ndarray) -> np.ndarray:
    # Pixels outside the sector are exact black on every source; keep them black.
    # Padded with its own edge so that closing does not erode tissue that reaches the border.
    mask = np.pad(gray > 3, 3, mode="edge")
    mask = ndimage.binary_closing(mask, iterations=3)[3:-3, 3:-3]
    return ndimage.binary_fill_holes(mask) if mask.any() else np.ones_like(gray, dtype=bool)


def _low_gain(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    drop_db = float(rng.uniform(16, 26))
    shifted = gray.astype(np.float32) - 255.0 * drop_db / DYNAMIC_RANGE_DB
    return np.clip(shifted, 0, 255)


def _reverberation(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    # Air under the lens: equally spaced bright bands fading with depth, speckle-like noise.
    h, w = shape
    depth = np.linspace(0, 1, h)[:, None]
    spacing = float(rng.uniform(0.04, 0.1))
    bands = np.exp(-0.5 * (((depth % spacing) - spacing / 2) / (spacing * 0.15)) ** 2)
    level = float(rng.uniform(80, 200)) * bands * np.exp(-depth / float(rng.uniform(0.1, 0.3)))
    noise = np.abs(rng.standard_normal((h, w))) * float(rng.uniform(3, 10))
    return np.broadcast_to(level, (h, w)) + noise


def _lost_contact(gray: np.ndarray, rng: np.random.Generator, partial: bool) -> np.ndarray:
    h, w = gray.shape
    lost = np.ones(w, dtype=bool)
    if partial:
        # One side of the footprint lifts off: 35-75% of the width, from the left or the right.
        width = int(w * float(rng.uniform(0.35, 0.75)))
        lost[:] = False
        if rng.random() < 0.5:
            lost[:width] = True
        else:
            lost[w - width :] = True
    out = gray.astype(np.float32)
    return np.where(lost[None, :], _reverberation((h, w), rng), out)


def _dead_elements(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # 1-3 bands of 1-3 scan lines, away from the array's ends, down to 0-20% of their echo.
    w = gray.shape[1]
    line_px = max(1.0, w / 128)  # a 128-element array across the frame's width
    out = gray.astype(np.float32)
    for _ in range(int(rng.integers(1, 4))):
        centre = float(rng.uniform(0.15 * w, 0.85 * w))
        half = line_px * int(rng.integers(1, 4)) / 2 + 0.5
        cols = np.abs(np.arange(w) - centre) <= half
        out[:, cols] *= float(rng.uniform(0.0, 0.2))
    return out


def _motion_blur(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    w = gray.shape[1]
    size = max(5, round(w * float(rng.uniform(0.035, 0.08)))) | 1
    angle = float(rng.uniform(0, math.pi))
    kernel = np.zeros((size, size))
    c = size // 2
    for t in np.linspace(-c, c, 4 * size):
        kernel[round(c + t * math.sin(angle)), round(c + t * math.cos(angle))] = 1.0
    return ndimage.convolve(gray.astype(np.float32), kernel / kernel.sum(), mode="nearest")


def _wrong_depth(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = gray.shape
    if rng.random() < 0.5:
        # Far too deep: the anatomy shrinks into the top, the bottom shows nothing.
        factor = float(rng.uniform(0.38, 0.55))
        small = ndimage.zoom(gray.astype(np.float32), factor, order=1)
        out = np.zeros((h, w), dtype=np.float32)
        sh, sw = min(small.shape[0], h), min(small.shape[1], w)
        left = (w - sw) // 2
        out[:sh, left : left + sw] = small[:sh, :sw]
        return out
    # Far too shallow: only the top 40-60% of the anatomy, stretched over the whole frame.
    keep = int(h * float(rng.uniform(0.4, 0.6)))
    top = gray[:keep].astype(np.float32)
    return ndimage.zoom(top, (h / keep, 1.0), order=1)[:h]


def inject(gray: np.ndarray, fault: InjectedFault, seed: int) -> np.ndarray:
    """Return a uint8 (H, W) frame's copy showing the fault; one seed always gives one image."""
    if gray.dtype != np.uint8 or gray.ndim != 2:
        raise ValueError(f"expected a uint8 (H, W) frame, got {gray.dtype} {gray.shape}")
    rng = np.random.default_rng(seed)
    fov = _field_of_view(gray)
    if fault is InjectedFault.LOW_GAIN:
        out = _low_gain(gray, rng)
    elif fault is InjectedFault.LOST_CONTACT_PARTIAL:
        out = _lost_contact(gray, rng, partial=True)
    elif fault is InjectedFault.LOST_CONTACT_FULL:
        out = _lost_contact(gray, rng, partial=False)
    elif fault is InjectedFault.DEAD_ELEMENTS:
        out = _dead_elements(gray, rng)
    elif fault is InjectedFault.MOTION_BLUR:
        out = _motion_blur(gray, rng)
    else:
        out = _wrong_depth(gray, rng)
        fov = np.ones_like(fov)  # the sector moves with the anatomy
    out = np.where(fov, out, 0.0)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
