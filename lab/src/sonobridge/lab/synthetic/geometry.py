"""Probe geometry: where each scan-line sample lies in the body and how lines map to pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

ProbeKind = Literal["linear", "convex", "phased"]


@dataclass(frozen=True)
class ProbeGeometry:
    """A transducer's field of view: scan lines fanning (sector) or parallel (linear)."""

    kind: ProbeKind
    depth_mm: float
    n_lines: int = 128
    n_samples: int = 384
    width_mm: float = 40.0
    sector_deg: float = 70.0
    radius_mm: float = 45.0

    def sample_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (x_mm, z_mm) of every (sample, line) point, z measured from the skin."""
        return _sample_positions(self)

    def sample_step_mm(self) -> float:
        """Return the axial distance between two samples on a line."""
        return self.depth_mm / (self.n_samples - 1)


@dataclass(frozen=True)
class ScanConversion:
    """Pixel grid of the displayed image and where each pixel reads the line data."""

    height: int
    width: int
    spacing_mm: float
    x0_mm: float
    sample_coord: np.ndarray
    line_coord: np.ndarray
    fov_mask: np.ndarray

    def pixel_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (x_mm, z_mm) of every displayed pixel centre."""
        rows = (np.arange(self.height) + 0.5) * self.spacing_mm
        cols = self.x0_mm + (np.arange(self.width) + 0.5) * self.spacing_mm
        return np.meshgrid(cols, rows)


def _angles(g: ProbeGeometry) -> np.ndarray:
    half = math.radians(g.sector_deg) / 2
    return np.linspace(-half, half, g.n_lines)


@lru_cache(maxsize=64)
def _sample_positions(g: ProbeGeometry) -> tuple[np.ndarray, np.ndarray]:
    depth = np.linspace(0.0, g.depth_mm, g.n_samples)[:, None]
    if g.kind == "linear":
        x = np.broadcast_to(
            np.linspace(-g.width_mm / 2, g.width_mm / 2, g.n_lines), (g.n_samples, g.n_lines)
        )
        z = np.broadcast_to(depth, (g.n_samples, g.n_lines))
        return np.ascontiguousarray(x), np.ascontiguousarray(z)
    theta = _angles(g)[None, :]
    r0 = g.radius_mm if g.kind == "convex" else 0.0
    r = r0 + depth
    return r * np.sin(theta), r * np.cos(theta) - r0


@lru_cache(maxsize=64)
def scan_conversion(g: ProbeGeometry, height: int, width: int) -> ScanConversion:
    """Build the pixel-to-line lookup for a geometry and output size (cached)."""
    if g.kind == "linear":
        x_extent = g.width_mm
    else:
        r0 = g.radius_mm if g.kind == "convex" else 0.0
        x_extent = 2 * (r0 + g.depth_mm) * math.sin(math.radians(g.sector_deg) / 2)
    spacing = max(g.depth_mm / height, x_extent / width)
    x0 = -spacing * width / 2
    rows = (np.arange(height) + 0.5) * spacing
    cols = x0 + (np.arange(width) + 0.5) * spacing
    xx, zz = np.meshgrid(cols, rows)
    if g.kind == "linear":
        line = (xx + g.width_mm / 2) / g.width_mm * (g.n_lines - 1)
        sample = zz / g.depth_mm * (g.n_samples - 1)
    else:
        r0 = g.radius_mm if g.kind == "convex" else 0.0
        theta = np.arctan2(xx, zz + r0)
        r = np.hypot(xx, zz + r0) - r0
        half = math.radians(g.sector_deg) / 2
        line = (theta + half) / (2 * half) * (g.n_lines - 1)
        sample = r / g.depth_mm * (g.n_samples - 1)
    inside = (line >= 0) & (line <= g.n_lines - 1) & (sample >= 0) & (sample <= g.n_samples - 1)
    return ScanConversion(height, width, spacing, x0, sample, line, inside)
