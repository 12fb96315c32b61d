"""Fetal head geometry: ellipse fitting, perimeter and gestational age by Hadlock 1984."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# Enough points on the fitted ellipse for a smooth overlay and a stable perimeter.
PERIMETER_SAMPLES = 360

# Hadlock FP et al. (1984) Radiology 152:497-501: menstrual age from HC (cm), cubic fit over
# 14-42 weeks, with the paper's +-2 SD variability per age band.
HADLOCK_HC = (8.96, 0.540, 0.0003)
HADLOCK_RANGE_WEEKS = (14.0, 42.0)
HADLOCK_2SD_WEEKS = ((18.0, 1.3), (24.0, 1.6), (30.0, 2.3), (36.0, 2.7), (99.0, 3.4))


def ramanujan(a: float, b: float) -> float:
    """Return the perimeter of an ellipse with semi-axes a, b (Ramanujan's first approximation)."""
    return math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b)))


def hadlock_ga_weeks(hc_mm: float) -> float:
    """Return the menstrual age in weeks for a head circumference (Hadlock 1984)."""
    hc = hc_mm / 10
    c0, c1, c3 = HADLOCK_HC
    return c0 + c1 * hc + c3 * hc**3


def hadlock_2sd_weeks(ga_weeks: float) -> float:
    """Return Hadlock 1984's +-2 SD of the HC-based age estimate at that age."""
    return next(sd for upper, sd in HADLOCK_2SD_WEEKS if ga_weeks < upper)


@dataclass(frozen=True)
class Ellipse:
    """An ellipse in mm (row, col): centre, semi-axes, unit vector of the major axis."""

    centre: np.ndarray
    semi_major: float
    semi_minor: float
    axis: np.ndarray

    def normalised_radius(self, pts: np.ndarray) -> np.ndarray:
        """Return sqrt((u/a)^2 + (v/b)^2) of points (n, 2) in mm: 1 on the ellipse."""
        d = pts - self.centre
        u = d @ self.axis
        v = d @ np.array([-self.axis[1], self.axis[0]])
        return np.sqrt((u / self.semi_major) ** 2 + (v / self.semi_minor) ** 2)

    def perimeter_points(self, n: int = PERIMETER_SAMPLES, scale: float = 1.0) -> np.ndarray:
        """Return n points (mm) on the ellipse, its axes scaled by `scale`."""
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        minor = np.array([-self.axis[1], self.axis[0]])
        return (
            self.centre
            + np.outer(np.cos(t) * self.semi_major * scale, self.axis)
            + np.outer(np.sin(t) * self.semi_minor * scale, minor)
        )

    def inside(self, shape: tuple[int, int], spacing: tuple[float, float], scale=1.0):
        """Return the pixel mask within the ellipse (axes scaled by `scale`)."""
        rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]]
        pts = np.stack([rr.ravel() * spacing[0], cc.ravel() * spacing[1]], axis=1)
        return (self.normalised_radius(pts) <= 1 / scale).reshape(shape)

    def describe(self) -> dict[str, Any]:
        """Return the ellipse as JSON (mm; centre and axis as row, col)."""
        return {
            "centre": [float(v) for v in self.centre],
            "semi_major": self.semi_major,
            "semi_minor": self.semi_minor,
            "axis": [float(v) for v in self.axis],
        }

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> Ellipse:
        """Rebuild an ellipse from describe()."""
        return cls(np.array(d["centre"]), d["semi_major"], d["semi_minor"], np.array(d["axis"]))


def fit_ellipse(pts: np.ndarray) -> Ellipse | None:
    """Fit an ellipse to points (n, 2) by direct least squares (Fitzgibbon; Halir-Flusser form)."""
    if len(pts) < 6:
        return None
    mu = pts.mean(axis=0)
    s = float(np.sqrt(((pts - mu) ** 2).sum(axis=1).mean())) or 1.0
    y, x = ((pts - mu) / s).T
    d1 = np.c_[x * x, x * y, y * y]
    d2 = np.c_[x, y, np.ones_like(x)]
    s1, s2, s3 = d1.T @ d1, d1.T @ d2, d2.T @ d2
    try:
        t = -np.linalg.solve(s3, s2.T)
        m = s1 + s2 @ t
        m = np.array([m[2] / 2, -m[1], m[0] / 2])
        _, vecs = np.linalg.eig(m)
    except np.linalg.LinAlgError:
        return None
    vecs = np.real(vecs)
    cond = 4 * vecs[0] * vecs[2] - vecs[1] ** 2
    if not (cond > 0).any():
        return None
    a1 = vecs[:, int(np.argmax(cond > 0))]
    a, b, c = a1
    d, e, f = t @ a1
    q = np.array([[a, b / 2], [b / 2, c]])
    try:
        cx, cy = np.linalg.solve(2 * q, -np.array([d, e]))
    except np.linalg.LinAlgError:
        return None
    f0 = f + (d * cx + e * cy) / 2
    if f0 > 0:
        # The conic's overall sign is arbitrary; with f0 < 0 both eigenvalues are positive.
        q, f0 = -q, -f0
    lam, vec = np.linalg.eigh(q)
    if not (lam * -f0 > 0).all():
        return None
    semi = np.sqrt(-f0 / lam) * s
    # eigh sorts ascending: the smaller eigenvalue belongs to the longer axis.
    axis_xy = vec[:, 0]
    return Ellipse(
        centre=np.array([cy * s + mu[0], cx * s + mu[1]]),
        semi_major=float(semi[0]),
        semi_minor=float(semi[1]),
        axis=np.array([axis_xy[1], axis_xy[0]]) / np.hypot(*axis_xy),
    )
