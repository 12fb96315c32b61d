"""Image-quality features that judge a frame against its own sector: gain, blur, contact, depth."""

from __future__ import annotations

import math

import numpy as np

from sonobridge.lab.training.graphs import FeatureConfig, _Graph

# Directions (degrees) and distances (pixels) of the directional differences: motion blur
# smooths one direction only, at a scale of a few pixels.
DIRECTIONS = tuple(range(0, 180, 22))
DISTANCES = (1, 3)
# Intensity levels (of full scale) of the lit-pixel histogram: a gain drop moves it down.
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
# The sector is the lit area with speckle holes closed; this many pixels fill the holes.
CLOSE_PX = 9


def _shift_kernels(radius: int) -> np.ndarray:
    """Kernels giving x(p) - x(p + d*u) per (direction, distance), bilinear off the grid."""
    size = 2 * radius + 1
    k = np.zeros((len(DIRECTIONS) * len(DISTANCES), 1, size, size), dtype=np.float32)
    for i, (deg, dist) in enumerate((a, d) for a in DIRECTIONS for d in DISTANCES):
        dy, dx = dist * math.sin(math.radians(deg)), dist * math.cos(math.radians(deg))
        k[i, 0, radius, radius] += 1.0
        y0, x0 = math.floor(dy), math.floor(dx)
        fy, fx = dy - y0, dx - x0
        for oy, ox, w in (
            (0, 0, (1 - fy) * (1 - fx)),
            (1, 0, fy * (1 - fx)),
            (0, 1, (1 - fy) * fx),
            (1, 1, fy * fx),
        ):
            if w > 0:
                k[i, 0, radius + y0 + oy, radius + x0 + ox] -= w
    return k


def quality_features(g: _Graph, x: str, cfg: FeatureConfig) -> list[str]:
    """Append sector-relative features; return their [N, k] tensors."""
    flat = lambda t: g.op("Flatten", [t], axis=1)  # noqa: E731
    f32 = lambda v: g.const(np.float32(v))  # noqa: E731
    eps = f32(1e-3)

    def log(t: str) -> str:
        return g.op("Log", [g.op("Add", [t, eps])])

    def mean_all(t: str) -> str:
        return g.reduce("ReduceMean", t, [1, 2, 3], keepdims=1)

    def step(t: str, level: float, sharp: float = 200.0) -> str:
        return g.op("Sigmoid", [g.op("Mul", [g.op("Sub", [t, f32(level)]), f32(sharp)])])

    def close(t: str, px: int) -> str:
        pad = px // 2
        kw = {"kernel_shape": [px, px], "strides": [1, 1], "pads": [pad] * 4}
        grown = g.op("MaxPool", [t], **kw)
        return g.op("Neg", [g.op("MaxPool", [g.op("Neg", [grown])], **kw)])

    def erode(t: str, px: int) -> str:
        pad = px // 2
        kw = {"kernel_shape": [px, px], "strides": [1, 1], "pads": [pad] * 4}
        return g.op("Neg", [g.op("MaxPool", [g.op("Neg", [t])], **kw)])

    parts: list[str] = []
    lit = step(x, 0.02)
    sector = close(lit, CLOSE_PX)
    area = g.op("Add", [mean_all(sector), eps])
    # Gain: a drop clips dark speckle to black inside the sector (holes) and moves the
    # lit-pixel histogram down; both are judged inside the frame's own sector.
    holes = g.op("Div", [mean_all(g.op("Relu", [g.op("Sub", [sector, lit])])), area])
    parts.append(flat(log(holes)))
    for level in LEVELS:
        above = g.op("Div", [mean_all(g.op("Mul", [step(x, level, 60.0), sector])), area])
        parts.append(flat(log(above)))
    # Motion blur: mean |x(p) - x(p + d*u)| inside the sector, per direction and distance,
    # relative to the sector's mean echo; blur lowers short steps along one direction only.
    radius = max(DISTANCES) + 1
    diffs = g.op("Abs", [g.op("Conv", [x, g.const(_shift_kernels(radius))], pads=[radius] * 4)])
    inner = erode(sector, 2 * radius + 1)
    inner_area = g.op("Add", [mean_all(inner), eps])
    tissue = g.op("Div", [mean_all(g.op("Mul", [x, inner])), inner_area])
    per = g.op(
        "Div", [g.reduce("ReduceMean", g.op("Mul", [diffs, inner]), [2, 3]), flat(inner_area)]
    )
    rel = g.op("Sub", [log(per), log(flat(tissue))])
    n_dir = len(DIRECTIONS)
    by_dir = g.op("Reshape", [rel, g.const(np.array([-1, n_dir, len(DISTANCES)], dtype=np.int64))])
    short = g.op(
        "Squeeze",
        [g.op("Slice", [by_dir, *_idx(g, 0, 1, 2)]), g.const(np.array([2], dtype=np.int64))],
    )
    long = g.op(
        "Squeeze",
        [g.op("Slice", [by_dir, *_idx(g, 1, 2, 2)]), g.const(np.array([2], dtype=np.int64))],
    )
    ratio = g.op("Sub", [short, long])
    parts += [rel, ratio]
    for t in (short, ratio):
        lo = g.reduce("ReduceMin", t, [1], keepdims=1)
        hi = g.reduce("ReduceMax", t, [1], keepdims=1)
        parts += [lo, hi, g.op("Sub", [hi, lo])]
    # Contact and depth: per lateral band, how much of the deep half is sector and how bright
    # it is against the whole sector; a lifted side or a too-deep setting empties it.
    band = cfg.size // 8
    half = cfg.size // 2
    deep = g.op("Slice", [x, *_idx(g, half, cfg.size, 2)])
    deep_sector = g.op("Slice", [sector, *_idx(g, half, cfg.size, 2)])
    pool = {"kernel_shape": [half, band], "strides": [half, band]}
    deep_echo = g.op("Div", [g.op("AveragePool", [deep], **pool), g.op("Add", [tissue, eps])])
    deep_fill = g.op("AveragePool", [deep_sector], **pool)
    deep_lit = g.op("AveragePool", [step(deep, 0.06, 60.0)], **pool)
    for t in (log(deep_echo), deep_fill, deep_lit):
        parts.append(flat(t))
        parts.append(flat(g.reduce("ReduceMin", t, [1, 2, 3], keepdims=1)))
    # Sector fill per depth band: too deep empties the bottom rows, too shallow widens the top.
    # A too-shallow setting stretches the top of the sector over the frame: the sector widens
    # more slowly with depth and speckle grows along the beam.
    thin = cfg.size // 16
    rows = g.op("AveragePool", [sector], kernel_shape=[thin, cfg.size], strides=[thin, cfg.size])
    parts.append(flat(rows))
    widening = g.op(
        "Sub",
        [g.op("Slice", [rows, *_idx(g, 1, 16, 2)]), g.op("Slice", [rows, *_idx(g, 0, 15, 2)])],
    )
    parts.append(flat(widening))
    return parts


def _idx(g: _Graph, start: int, end: int, axis: int) -> list[str]:
    return [g.const(np.array([v], dtype=np.int64)) for v in (start, end, axis)]
