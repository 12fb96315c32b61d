"""Image-quality features read at the input's own resolution, before it is pooled down."""

from __future__ import annotations

import math

import numpy as np
from onnx import helper

from sonobridge.lab.training.graphs import _Graph

# Speckle is 1-3 px at this resolution; motion blur smears it 9-20 px along one direction, so
# how fast pixel differences saturate with distance, per direction, tells blur from texture.
DIRECTIONS = tuple(22.5 * i for i in range(8))
DISTANCES = (1, 2, 4, 8)
CLOSE_PX = 17
# Near the transducer face: the first 30% of the frame's height below each column's sector edge.
FACE_DEPTH = 0.3
DEEP_DEPTH = 0.4
# Columns are pooled in fours and sorted; these ranks are the side-free quantiles.
COLUMN_POOL = 4
RANK_QUANTILES = (0.1, 0.25, 0.4, 0.6, 0.8)


def _shift_kernel(deg: float, dist: int) -> np.ndarray:
    """Kernel giving x(p) - x(p + dist*u), bilinear off the grid."""
    size = 2 * dist + 1
    k = np.zeros((size, size), dtype=np.float32)
    dy, dx = dist * math.sin(math.radians(deg)), dist * math.cos(math.radians(deg))
    k[dist, dist] += 1.0
    y0, x0 = math.floor(dy), math.floor(dx)
    fy, fx = dy - y0, dx - x0
    for oy, ox, w in ((0, 0, (1 - fy) * (1 - fx)), (1, 0, fy * (1 - fx)), (0, 1, (1 - fy) * fx)):
        if w > 1e-9:
            k[dist + y0 + oy, dist + x0 + ox] -= w
    if fy * fx > 1e-9:
        k[dist + y0 + 1, dist + x0 + 1] -= fy * fx
    return k


def _f32(g: _Graph, v: float) -> str:
    return g.const(np.float32(v))


def _i64(g: _Graph, *v: int) -> str:
    return g.const(np.array(v, dtype=np.int64))


def _log(g: _Graph, t: str) -> str:
    return g.op("Log", [g.op("Add", [t, _f32(g, 1e-3)])])


def _step(g: _Graph, t: str, level: float, sharp: float = 200.0) -> str:
    return g.op("Sigmoid", [g.op("Mul", [g.op("Sub", [t, _f32(g, level)]), _f32(g, sharp)])])


def _below(g: _Graph, t: str, level: float, sharp: float) -> str:
    return _step(g, g.op("Neg", [t]), -level, sharp)


def _erode(g: _Graph, t: str, px: int) -> str:
    pad = px // 2
    kw = {"kernel_shape": [px, px], "strides": [1, 1], "pads": [pad] * 4}
    return g.op("Neg", [g.op("MaxPool", [g.op("Neg", [t])], **kw)])


def _dilate(g: _Graph, t: str, px: int) -> str:
    pad = px // 2
    return g.op("MaxPool", [t], kernel_shape=[px, px], strides=[1, 1], pads=[pad] * 4)


def _sum(g: _Graph, t: str, axes: list[int]) -> str:
    # At opset 17 ReduceSum alone takes its axes as an input.
    return g.op("ReduceSum", [t, _i64(g, *axes)], keepdims=1)


def _masked_mean(g: _Graph, t: str, mask: str, axes: list[int]) -> str:
    num = _sum(g, g.op("Mul", [t, mask]), axes)
    den = g.op("Add", [_sum(g, mask, axes), _f32(g, 1e-3)])
    return g.op("Div", [num, den])


def _flat(g: _Graph, t: str) -> str:
    return g.op("Flatten", [t], axis=1)


def native_features(g: _Graph, x: str, size: int) -> list[str]:
    """Append blur, multi-scale sharpness and per-scanline contact features of x [N,1,S,S]."""
    parts: list[str] = []
    sector = _erode(g, _dilate(g, _step(g, x, 0.02), CLOSE_PX), CLOSE_PX)
    inner = _erode(g, sector, 2 * max(DISTANCES) + 3)
    tissue = _masked_mean(g, x, inner, [1, 2, 3])
    log_tissue = _log(g, tissue)
    # Blur: per direction and distance, mean |x(p) - x(p + d*u)| inside the sector against the
    # sector's echo; then how much shorter steps lose than the longest (saturation) per direction.
    rel = []
    for dist in DISTANCES:
        k = np.stack([_shift_kernel(deg, dist)[None] for deg in DIRECTIONS])
        diffs = g.op("Abs", [g.op("Conv", [x, g.const(k)], pads=[dist] * 4)])
        rel.append(g.op("Sub", [_log(g, _masked_mean(g, diffs, inner, [2, 3])), log_tissue]))
    parts += [_flat(g, r) for r in rel]
    half = len(DIRECTIONS) // 2
    for short in rel[:2]:
        sat = _flat(g, g.op("Sub", [short, rel[-1]]))
        # A direction against the one at right angles: blur is one-sided, speckle is not.
        across = g.op(
            "Sub",
            [
                g.op("Slice", [sat, _i64(g, 0), _i64(g, half), _i64(g, 1)]),
                g.op("Slice", [sat, _i64(g, half), _i64(g, 2 * half), _i64(g, 1)]),
            ],
        )
        lo = g.reduce("ReduceMin", sat, [1], keepdims=1)
        hi = g.reduce("ReduceMax", sat, [1], keepdims=1)
        parts += [sat, lo, hi, g.op("Sub", [hi, lo])]
        parts.append(g.reduce("ReduceMax", g.op("Abs", [across]), [1], keepdims=1))
    # Sharpness at three scales: blur takes the finest scale's share of detail first.
    lap = g.const(np.array([[[[0, -1, 0], [-1, 4, -1], [0, -1, 0]]]], dtype=np.float32))
    # A too-shallow setting interpolates rows: curvature along the beam fades against across.
    along_k = g.const(np.array([[[[1.0], [-2.0], [1.0]]]], dtype=np.float32))
    across_k = g.const(np.array([[[[1.0, -2.0, 1.0]]]], dtype=np.float32))
    level, mask, energies = x, inner, []
    for scale in range(3):
        if scale:
            level = g.op("AveragePool", [level], kernel_shape=[2, 2], strides=[2, 2])
            mask = g.op("AveragePool", [mask], kernel_shape=[2, 2], strides=[2, 2])
        detail = g.op("Abs", [g.op("Conv", [level, lap], pads=[1] * 4)])
        energies.append(_log(g, _flat(g, _masked_mean(g, detail, mask, [1, 2, 3]))))
        curvature = [
            _log(
                g,
                _masked_mean(
                    g, g.op("Abs", [g.op("Conv", [level, k], pads=pads)]), mask, [1, 2, 3]
                ),
            )
            for k, pads in ((along_k, [1, 0, 1, 0]), (across_k, [0, 1, 0, 1]))
        ]
        parts.append(_flat(g, g.op("Sub", curvature)))
    parts += [
        g.op("Sub", [energies[0], energies[1]]),
        g.op("Sub", [energies[1], energies[2]]),
        g.op("Sub", [energies[0], _flat(g, log_tissue)]),
    ]
    return parts + _scanlines(g, x, sector, log_tissue, size)


def _scanlines(g: _Graph, x: str, sector: str, log_tissue: str, size: int) -> list[str]:
    """Per-scanline contact, sorted over columns so that either side reads the same.

    A lifted side shows dark gaps between flat reverberation bands near the face and no echo
    deep down; tissue shows speckle that changes as much across the beam as along it.
    """
    # Depth below each column's own sector edge, in frame heights: the sector starts lower on
    # a convex probe's flanks than at its centre.
    edge = g.op("CumSum", [sector, g.const(np.array(2, dtype=np.int64))])
    depth = g.op("Mul", [edge, _f32(g, 1.0 / size)])
    face = g.op("Mul", [sector, _below(g, depth, FACE_DEPTH, 60.0)])
    deep = g.op("Mul", [sector, _step(g, depth, DEEP_DEPTH, 60.0)])
    across_k = g.const(np.array([[[[-1.0, 1.0]]]], dtype=np.float32))
    along_k = g.const(np.array([[[[-1.0], [1.0]]]], dtype=np.float32))
    across = g.op("Abs", [g.op("Conv", [x, across_k], pads=[0, 0, 0, 1])])
    along = g.op("Abs", [g.op("Conv", [x, along_k], pads=[0, 0, 1, 0])])
    dark = _below(g, x, 0.04, 150.0)
    flatness = g.op(
        "Sub",
        [_log(g, _masked_mean(g, across, face, [2])), _log(g, _masked_mean(g, along, face, [2]))],
    )
    deep_echo = g.op("Sub", [_log(g, _masked_mean(g, x, deep, [2])), log_tissue])
    columns = [
        (_masked_mean(g, dark, face, [2]), face),
        (flatness, face),
        (deep_echo, deep),
    ]
    width = size // COLUMN_POOL
    ranks = [round(q * width) for q in RANK_QUANTILES]
    parts = []
    for value, region in columns:
        # Columns with (almost) none of the region say nothing: they read 0, as tissue does.
        valid = _step(g, g.reduce("ReduceMean", region, [2], keepdims=1), 0.05, 60.0)
        row = _flat(
            g,
            g.op(
                "AveragePool",
                [g.op("Mul", [value, valid])],
                kernel_shape=[1, COLUMN_POOL],
                strides=[1, COLUMN_POOL],
            ),
        )
        ranked = g.name("topk")
        g.nodes.append(
            helper.make_node(
                "TopK", [row, _i64(g, width)], [ranked, g.name("topk_idx")], axis=1, largest=1
            )
        )
        parts.append(g.op("Gather", [ranked, _i64(g, *ranks)], axis=1))
        parts.append(g.reduce("ReduceMean", row, [1], keepdims=1))
    return parts


def native_blocks() -> dict[str, slice]:
    """Where each block of native_features sits, counted back from the end of the features."""
    sizes = {
        "differences": len(DISTANCES) * len(DIRECTIONS),
        # Per short distance: each direction's saturation, its min, max, range and asymmetry.
        "saturation": 2 * (len(DIRECTIONS) + 4),
        "curvature": 3,
        "sharpness": 3,
        "scanlines": 3 * (len(RANK_QUANTILES) + 1),
    }
    blocks, end = {}, 0
    for name, n in reversed(sizes.items()):
        blocks[name] = slice(end - n, end or None)
        end -= n
    return dict(reversed(blocks.items()))
