"""ONNX graphs of the reference models: fixed image-feature layers plus a small trained MLP head."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


@dataclass(frozen=True)
class FeatureConfig:
    """Image size and filter settings of a feature extractor."""

    size: int
    grid: int = 8
    valley_shifts: tuple[int, ...] = (1, 2)
    line_pool: int = 4
    line_rows: int = 7
    line_angles_deg: tuple[float, ...] = tuple(np.linspace(-48, 48, 17).round(1))
    thresholds: tuple[float, ...] = (0.04, 0.12, 0.25, 0.45, 0.7)
    # Gain-invariant acquisition-physics features (adapted image-quality versions only).
    physics: bool = False
    # Sector-relative gain, blur, contact and depth features (image-quality 1.3.0 on).
    sector: bool = False
    # Input side when larger than `size` (image-quality 1.4.0 on): speckle, blur and contact
    # features are read at this resolution, the others on the input pooled down to `size`.
    native: int = 0

    @property
    def input_size(self) -> int:
        """Return the side of the square input the graph takes."""
        return max(self.size, self.native)


@dataclass
class _Graph:
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)
    n: int = 0

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.n}"

    def const(self, value: np.ndarray, prefix: str = "c") -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], prefix: str | None = None, **attrs) -> str:
        out = self.name(prefix or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def reduce(self, op_type: str, x: str, axes: list[int], keepdims: int = 0) -> str:
        # From opset 18 the axes of most Reduce ops are inputs; at 17 only ReduceSum is.
        return self.op(op_type, [x], axes=axes, keepdims=keepdims)


def _oriented_kernels(cfg: FeatureConfig) -> np.ndarray:
    rows = cfg.line_rows
    half_rows = rows // 2
    max_off = half_rows * cfg.line_pool * math.tan(math.radians(max(map(abs, cfg.line_angles_deg))))
    half_w = math.ceil(max_off) + 1
    k = np.zeros((len(cfg.line_angles_deg), 1, rows, 2 * half_w + 1), dtype=np.float32)
    for a, angle in enumerate(cfg.line_angles_deg):
        step = cfg.line_pool * math.tan(math.radians(angle))
        for r in range(rows):
            c = half_w + (r - half_rows) * step
            lo = math.floor(c)
            frac = c - lo
            k[a, 0, r, lo] += 1 - frac
            if frac > 0:
                k[a, 0, r, lo + 1] += frac
    return k / rows


def _shift_kernels(shifts: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, int]:
    d = max(shifts)
    left = np.zeros((len(shifts), 1, 1, 2 * d + 1), dtype=np.float32)
    right = np.zeros_like(left)
    for i, s in enumerate(shifts):
        left[i, 0, 0, d - s] = 1.0
        right[i, 0, 0, d + s] = 1.0
    return left, right, d


def _features(g: _Graph, x: str, cfg: FeatureConfig) -> str:
    """Append the feature layers; return the name of the [N, F] feature tensor."""
    parts: list[str] = []
    native = x
    if cfg.input_size > cfg.size:
        pool = cfg.input_size // cfg.size
        x = g.op("AveragePool", [native], kernel_shape=[pool, pool], strides=[pool, pool])
    flat = lambda t: g.op("Flatten", [t], axis=1)  # noqa: E731
    parts.append(g.reduce("ReduceMean", x, [1, 2, 3], keepdims=1))
    parts[-1] = flat(parts[-1])
    cell = cfg.size // cfg.grid
    grid_mean = g.op("AveragePool", [x], kernel_shape=[cell, cell], strides=[cell, cell])
    sq = g.op("Mul", [x, x])
    grid_sq = g.op("AveragePool", [sq], kernel_shape=[cell, cell], strides=[cell, cell])
    var = g.op("Sub", [grid_sq, g.op("Mul", [grid_mean, grid_mean])])
    grid_std = g.op("Sqrt", [g.op("Add", [g.op("Relu", [var]), g.const(np.float32(1e-6))])])
    parts += [flat(grid_mean), flat(grid_std)]
    for t in cfg.thresholds:
        s = g.op(
            "Sigmoid",
            [g.op("Mul", [g.op("Sub", [x, g.const(np.float32(t))]), g.const(np.float32(40.0))])],
        )
        parts.append(flat(g.reduce("ReduceMean", s, [1, 2, 3], keepdims=1)))
    grad_w = np.array(
        [[[[-1, 1], [0, 0]]], [[[-1, 0], [1, 0]]], [[[-1, 0], [0, 1]]], [[[0, -1], [1, 0]]]],
        dtype=np.float32,
    )
    w = g.const(grad_w, "grad_w")
    level = x
    for scale in range(3):
        if scale:
            level = g.op("AveragePool", [level], kernel_shape=[2, 2], strides=[2, 2])
        grads = g.op("Abs", [g.op("Conv", [level, w])])
        energy = g.reduce("ReduceMean", grads, [2, 3])
        parts.append(g.op("Log", [g.op("Add", [energy, g.const(np.float32(1e-3))])]))
    rows = g.reduce("ReduceMean", x, [3], keepdims=1)
    band = cfg.size // 16
    parts.append(flat(g.op("AveragePool", [rows], kernel_shape=[band, 1], strides=[band, 1])))
    # Dead elements leave thin dark lines along the beam: smooth along the beam to suppress
    # speckle, find narrow valleys across it, then integrate them along oriented lines.
    smooth = g.op("AveragePool", [x], kernel_shape=[5, 1], strides=[1, 1], pads=[2, 0, 2, 0])
    left_k, right_k, d = _shift_kernels(cfg.valley_shifts)
    pads = [0, d, 0, d]
    left = g.op("Conv", [smooth, g.const(left_k, "left_w")], pads=pads)
    right = g.op("Conv", [smooth, g.const(right_k, "right_w")], pads=pads)
    depth = g.op("Relu", [g.op("Sub", [g.op("Min", [left, right]), smooth])])
    base = g.op(
        "Add",
        [
            g.op("Mul", [g.op("Add", [left, right]), g.const(np.float32(0.5))]),
            g.const(np.float32(0.03)),
        ],
    )
    valley = g.reduce("ReduceMax", g.op("Div", [depth, base]), [1], keepdims=1)
    parts.append(flat(g.reduce("ReduceMean", valley, [1, 2, 3], keepdims=1)))
    pooled = g.op(
        "AveragePool", [valley], kernel_shape=[cfg.line_pool, 1], strides=[cfg.line_pool, 1]
    )
    lines = g.op("Conv", [pooled, g.const(_oriented_kernels(cfg), "line_w")])
    line_max = g.reduce("ReduceMax", lines, [2, 3])
    parts.append(line_max)
    parts.append(flat(g.reduce("ReduceMax", line_max, [1], keepdims=1)))
    if cfg.physics:
        parts += _physics(g, x, cfg)
    if cfg.sector:
        # Imported here: that module builds on this one's graph type.
        from sonobridge.lab.training.quality_features import quality_features

        parts += quality_features(g, x, cfg)
    if cfg.input_size > cfg.size:
        from sonobridge.lab.training.native_features import native_features

        parts += native_features(g, native, cfg.input_size)
    return g.op("Concat", parts, axis=1, prefix="features")


def _log(g: _Graph, t: str, eps: float = 1e-3) -> str:
    return g.op("Log", [g.op("Add", [t, g.const(np.float32(eps))])])


def _physics(g: _Graph, x: str, cfg: FeatureConfig) -> list[str]:
    """Features that judge a frame against itself, so they hold across devices and gains."""
    flat = lambda t: g.op("Flatten", [t], axis=1)  # noqa: E731
    eps = g.const(np.float32(1e-3))
    # Lit pixels: the sector, not the black frame around it.
    lit = g.op(
        "Sigmoid",
        [g.op("Mul", [g.op("Sub", [x, g.const(np.float32(0.02))]), g.const(np.float32(200.0))])],
    )
    lit_frac = g.reduce("ReduceMean", lit, [1, 2, 3], keepdims=1)
    mean = g.reduce("ReduceMean", x, [1, 2, 3], keepdims=1)
    # Gain: the mean echo of lit tissue, and the bright tail, in log (dB-like) units.
    lit_mean = g.op("Div", [mean, g.op("Add", [lit_frac, eps])])
    parts = [flat(_log(g, lit_frac)), flat(_log(g, lit_mean)), flat(_log(g, mean))]
    bright = g.reduce(
        "ReduceMax",
        g.op("AveragePool", [x], kernel_shape=[8, 8], strides=[8, 8]),
        [1, 2, 3],
        keepdims=1,
    )
    parts.append(flat(_log(g, bright)))
    # Depth and lateral profiles relative to the frame's own mean (wrong depth, lost contact).
    band = cfg.size // 16
    rows = g.reduce("ReduceMean", x, [3], keepdims=1)
    cols = g.reduce("ReduceMean", x, [2], keepdims=1)
    row_p = g.op("AveragePool", [rows], kernel_shape=[band, 1], strides=[band, 1])
    col_p = g.op("AveragePool", [cols], kernel_shape=[1, band], strides=[1, band])
    denom = g.op("Add", [mean, eps])
    parts.append(flat(g.op("Div", [row_p, denom])))
    parts.append(flat(g.op("Div", [col_p, denom])))
    # Speckle: fully developed speckle has local std close to its local mean; blur and
    # reverberation smooth it. Local contrast at 2 and 4 pixels, overall and per lateral band.
    for cell in (2, 4):
        m = g.op("AveragePool", [x], kernel_shape=[cell, cell], strides=[cell, cell])
        sq = g.op(
            "AveragePool", [g.op("Mul", [x, x])], kernel_shape=[cell, cell], strides=[cell, cell]
        )
        sd = g.op(
            "Sqrt",
            [
                g.op(
                    "Add",
                    [
                        g.op("Relu", [g.op("Sub", [sq, g.op("Mul", [m, m])])]),
                        g.const(np.float32(1e-6)),
                    ],
                )
            ],
        )
        contrast = g.op("Div", [g.reduce("ReduceMean", sd, [1, 2, 3], keepdims=1), denom])
        parts.append(flat(_log(g, contrast)))
    # Texture direction per lateral band: reverberation under a lifted probe is horizontal
    # (bands), tissue is not; the log ratio of vertical to lateral change per band and its extremes.
    dy = g.op("Abs", [g.op("Conv", [x, g.const(np.array([[[[-1.0], [1.0]]]], dtype=np.float32))])])
    dx = g.op("Abs", [g.op("Conv", [x, g.const(np.array([[[[-1.0, 1.0]]]], dtype=np.float32))])])
    dy_b = g.op(
        "AveragePool",
        [g.reduce("ReduceMean", dy, [2], keepdims=1)],
        kernel_shape=[1, band],
        strides=[1, band],
    )
    dx_b = g.op(
        "AveragePool",
        [g.reduce("ReduceMean", dx, [2], keepdims=1)],
        kernel_shape=[1, band - 1],
        strides=[1, band - 1],
    )
    ratio = g.op(
        "Sub",
        [
            _log(g, dy_b),
            _log(
                g,
                g.op(
                    "Slice",
                    [
                        dx_b,
                        g.const(np.array([0], dtype=np.int64)),
                        g.const(np.array([16], dtype=np.int64)),
                        g.const(np.array([3], dtype=np.int64)),
                    ],
                ),
            ),
        ],
    )
    parts.append(flat(ratio))
    parts.append(flat(g.reduce("ReduceMax", ratio, [1, 2, 3], keepdims=1)))
    parts.append(flat(g.reduce("ReduceMin", ratio, [1, 2, 3], keepdims=1)))
    # Sharpness relative to contrast: blur lowers fine-scale change more than coarse.
    lap = np.array([[[[0, -1, 0], [-1, 4, -1], [0, -1, 0]]]], dtype=np.float32)
    fine = g.reduce(
        "ReduceMean", g.op("Abs", [g.op("Conv", [x, g.const(lap)])]), [1, 2, 3], keepdims=1
    )
    coarse_x = g.op("AveragePool", [x], kernel_shape=[4, 4], strides=[4, 4])
    coarse = g.reduce(
        "ReduceMean", g.op("Abs", [g.op("Conv", [coarse_x, g.const(lap)])]), [1, 2, 3], keepdims=1
    )
    parts.append(flat(g.op("Sub", [_log(g, fine), _log(g, coarse)])))
    parts.append(flat(g.op("Sub", [_log(g, fine), _log(g, mean)])))
    # Speckle anisotropy: a too-shallow depth stretches speckle along the beam.
    parts.append(
        flat(
            g.op(
                "Sub",
                [
                    _log(g, g.reduce("ReduceMean", dy, [1, 2, 3], keepdims=1)),
                    _log(g, g.reduce("ReduceMean", dx, [1, 2, 3], keepdims=1)),
                ],
            )
        )
    )
    # Low gain clips the darker half of speckle to black inside tissue: dark pixels beside lit
    # ones, unlike the black frame around a sector, which is dark on all sides.
    around = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    for level in (0.03, 0.08):
        dark = g.op(
            "Sigmoid",
            [
                g.op(
                    "Mul",
                    [g.op("Sub", [g.const(np.float32(level)), x]), g.const(np.float32(150.0))],
                )
            ],
        )
        near_lit = g.op(
            "Sigmoid",
            [
                g.op(
                    "Mul",
                    [
                        g.op("Sub", [around, g.const(np.float32(2 * level))]),
                        g.const(np.float32(150.0)),
                    ],
                )
            ],
        )
        holes = g.reduce("ReduceMean", g.op("Mul", [dark, near_lit]), [1, 2, 3], keepdims=1)
        lit_area = g.reduce("ReduceMean", near_lit, [1, 2, 3], keepdims=1)
        parts.append(flat(g.op("Div", [holes, g.op("Add", [lit_area, eps])])))
    return parts


def feature_model(cfg: FeatureConfig, input_name: str = "image") -> onnx.ModelProto:
    """Build a graph that maps [N,1,S,S] images to [N,F] features (used to train the head)."""
    g = _Graph()
    feats = _features(g, input_name, cfg)
    return _model(g, input_name, cfg.input_size, [(feats, "features", None)])


@dataclass
class MlpHead:
    """Standardisation, one hidden ReLU layer and a linear output, as numpy arrays."""

    mean: np.ndarray
    std: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    def logits(self, feats: np.ndarray) -> np.ndarray:
        """Return output logits for features [N, F] (numpy reference of the ONNX head)."""
        h = np.maximum((feats - self.mean) / self.std @ self.w1 + self.b1, 0)
        return h @ self.w2 + self.b2


def standardise(g: _Graph, x: str, mean: np.ndarray, std: np.ndarray) -> str:
    """Append (x - mean) / std in float32."""
    return g.op(
        "Div",
        [g.op("Sub", [x, g.const(mean.astype(np.float32))]), g.const(std.astype(np.float32))],
    )


def classifier_model(
    cfg: FeatureConfig,
    head: MlpHead,
    calibration: dict[str, float],
    output: str,
    input_name: str = "image",
    doc: str = "",
    merge: np.ndarray | None = None,
    post: Callable[[_Graph, str, str], str] | None = None,
) -> onnx.ModelProto:
    """Build the full model: features, head, calibration and softmax or sigmoid output.

    merge (head outputs x classes, 0/1) sums the softmax of finer head classes into the
    served classes; the logits output is then the log of the merged probabilities.
    post(graph, features, probabilities) returns probabilities moved by further layers.
    """
    g = _Graph()
    feats = _features(g, input_name, cfg)
    z = standardise(g, feats, head.mean, head.std)
    h = g.op(
        "Relu",
        [
            g.op(
                "Gemm",
                [z, g.const(head.w1.astype(np.float32)), g.const(head.b1.astype(np.float32))],
            )
        ],
    )
    logits = g.op(
        "Gemm",
        [h, g.const(head.w2.astype(np.float32)), g.const(head.b2.astype(np.float32))],
        prefix="logits",
    )
    if output == "softmax":
        scaled = g.op("Div", [logits, g.const(np.float32(calibration["temperature"]))])
        probs = g.op("Softmax", [scaled], axis=1, prefix="probabilities")
    else:
        scaled = g.op(
            "Add",
            [
                g.op("Mul", [logits, g.const(np.float32(calibration["platt_a"]))]),
                g.const(np.float32(calibration["platt_b"])),
            ],
        )
        probs = g.op("Sigmoid", [scaled], prefix="probabilities")
    n_out = head.w2.shape[1]
    if merge is not None:
        probs = g.op("MatMul", [probs, g.const(merge.astype(np.float32))], prefix="merged")
        n_out = merge.shape[1]
    if post is not None:
        probs = post(g, feats, probs)
    if merge is not None or post is not None:
        logits = g.op("Log", [g.op("Add", [probs, g.const(np.float32(1e-12))])], prefix="logp")
    return _model(
        g,
        input_name,
        cfg.input_size,
        [(probs, "probabilities", n_out), (logits, "logits", n_out)],
        doc,
    )


def checked_model(graph: onnx.GraphProto, doc: str) -> onnx.ModelProto:
    """Wrap a graph into an IR 8, opset 17 model that the full ONNX checker accepts."""
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sonobridge"
    )
    model.ir_version = 8
    model.doc_string = doc
    onnx.checker.check_model(model, full_check=True)
    return model


def _model(
    g: _Graph, input_name: str, size: int, outputs: list[tuple[str, str, int | None]], doc: str = ""
) -> onnx.ModelProto:
    final_outputs = []
    for tensor, name, width in outputs:
        g.nodes.append(helper.make_node("Identity", [tensor], [name]))
        final_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", width]))
    graph = helper.make_graph(
        g.nodes,
        "sonobridge",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 1, size, size])],
        final_outputs,
        initializer=g.inits,
    )
    return checked_model(graph, doc)
