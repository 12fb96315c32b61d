"""Small numpy fitters for the clinical modules: least squares, Gaussian error, logistic."""

from __future__ import annotations

import numpy as np


def fit_linear(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Return (a, b) minimising squared error of a*x + b against y."""
    a, b = np.linalg.lstsq(np.c_[x, np.ones(len(x))], y, rcond=None)[0]
    return float(a), float(b)


def fit_least_absolute(x: np.ndarray, y: np.ndarray, iters: int = 100) -> tuple[float, float]:
    """Return (a, b) minimising absolute error of a*x + b against y (reweighted least squares).

    A few gross misses (a wrong ring, a half-found lesion) would tilt a least-squares line
    toward the mean; the absolute-error line follows the bulk of good measurements.
    """
    design = np.c_[x, np.ones(len(x))]
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    for _ in range(iters):
        w = 1 / np.maximum(np.abs(design @ coef - y), 1e-3)
        new = np.linalg.lstsq(design * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
        if np.abs(new - coef).max() < 1e-9:
            break
        coef = new
    return float(coef[0]), float(coef[1])


def fit_gaussian_error(residual: np.ndarray, spread: np.ndarray) -> tuple[float, float]:
    """Return (s0, k) maximising the likelihood of residual ~ N(0, s0^2 + (k*spread)^2)."""
    best, best_ll = (0.1, 0.0), -np.inf
    for s0 in np.geomspace(0.005, 20.0, 120):
        for k in np.concatenate([[0.0], np.geomspace(0.05, 20.0, 60)]):
            var = s0**2 + (k * spread) ** 2
            ll = float(-0.5 * np.sum(np.log(var) + residual**2 / var))
            if ll > best_ll:
                best, best_ll = (float(s0), float(k)), ll
    return best


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iters: int = 3000) -> np.ndarray:
    """Return weights [bias, w...] of a logistic regression fitted by Newton steps."""
    xb = np.c_[np.ones(len(x)), x]
    w = np.zeros(xb.shape[1])
    yf = y.astype(float)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(xb @ w, -60, 60)))
        grad = xb.T @ (p - yf) + l2 * w
        hess = xb.T @ (xb * (p * (1 - p))[:, None]) + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w
