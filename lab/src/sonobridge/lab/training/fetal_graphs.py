"""ONNX graph of the fetal-skull segmenter: fixed local and directional features, 1x1-conv MLP."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper

from sonobridge.lab.training.graphs import OPSET, MlpHead, _Graph

SCALES = (3, 7, 15, 31, 61)
# Cells along each direction that the "is there bright bone that way" features look.
REACH = (12, 40, 80)


def _pool(g: _Graph, x: str, k: int) -> str:
    return g.op(
        "AveragePool",
        [x],
        kernel_shape=[k, k],
        strides=[1, 1],
        pads=[k // 2] * 4,
        count_include_pad=0,
    )


def _directional_max(g: _Graph, x: str, reach: int) -> list[str]:
    """Return the max of x over the next `reach` cells right, left, down and up of each cell."""
    r = reach - 1
    # pads are [top, left, bottom, right]; MaxPool pads with -inf so borders stay honest.
    shapes = [
        ([1, reach], [0, 0, 0, r]),
        ([1, reach], [0, r, 0, 0]),
        ([reach, 1], [0, 0, r, 0]),
        ([reach, 1], [r, 0, 0, 0]),
    ]
    return [
        g.op("MaxPool", [x], kernel_shape=kernel, strides=[1, 1], pads=pads)
        for kernel, pads in shapes
    ]


def _features(g: _Graph, x: str, height: int, width: int) -> str:
    """Append per-cell features; return the [N, F, H, W] tensor name."""
    parts = [x]
    means = {k: _pool(g, x, k) for k in SCALES}
    parts += list(means.values())
    sq = g.op("Mul", [x, x])
    for k in (7, 15):
        var = g.op("Sub", [_pool(g, sq, k), g.op("Mul", [means[k], means[k]])])
        parts.append(g.op("Sqrt", [g.op("Add", [g.op("Relu", [var]), g.const(np.float32(1e-6))])]))
    for small, big in itertools.pairwise(SCALES):
        parts.append(g.op("Sub", [means[small], means[big]]))
    # Inside the skull there is bright bone in every direction; outside, fluid lies some way.
    for reach in REACH:
        maxima = _directional_max(g, means[3], reach)
        parts += maxima
        lo = g.op("Min", [g.op("Min", [maxima[0], maxima[1]]), g.op("Min", [maxima[2], maxima[3]])])
        parts.append(lo)
    rows = np.broadcast_to(np.linspace(0, 1, height, dtype=np.float32)[:, None], (height, width))
    cols = np.broadcast_to(np.linspace(0, 1, width, dtype=np.float32)[None, :], (height, width))
    zero = g.op("Mul", [x, g.const(np.float32(0.0))])
    for grid in (rows, cols):
        parts.append(g.op("Add", [zero, g.const(np.ascontiguousarray(grid)[None, None])]))
    return g.op("Concat", parts, axis=1, prefix="features")


def _model(
    g: _Graph, height: int, width: int, tensor: str, name: str, channels: int | None, doc=""
):
    g.nodes.append(helper.make_node("Identity", [tensor], [name]))
    graph = helper.make_graph(
        g.nodes,
        "sonobridge-fetal-skull",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, height, width])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", channels, height, width])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sonobridge"
    )
    model.ir_version = 8
    model.doc_string = doc
    onnx.checker.check_model(model, full_check=True)
    return model


def feature_model(height: int, width: int) -> onnx.ModelProto:
    """Return the graph mapping [N,1,H,W] images to [N,F,H,W] per-cell features."""
    g = _Graph()
    return _model(g, height, width, _features(g, "image", height, width), "features", None)


def segmentation_model(
    height: int, width: int, head: MlpHead, temperature: float, doc: str = ""
) -> onnx.ModelProto:
    """Return features + per-cell MLP (as 1x1 convolutions) + tempered softmax over classes."""
    g = _Graph()
    feats = _features(g, "image", height, width)
    # Standardisation folds into the first layer: w' = w / std, b' = b - (mean / std) @ w.
    w1 = (head.w1 / head.std[:, None]).T.astype(np.float32)[:, :, None, None]
    b1 = (head.b1 - (head.mean / head.std) @ head.w1).astype(np.float32)
    h = g.op("Relu", [g.op("Conv", [feats, g.const(w1, "w1"), g.const(b1, "b1")])])
    w2 = head.w2.T.astype(np.float32)[:, :, None, None]
    logits = g.op("Conv", [h, g.const(w2, "w2"), g.const(head.b2.astype(np.float32), "b2")])
    scaled = g.op("Div", [logits, g.const(np.float32(temperature))])
    probs = g.op("Softmax", [scaled], axis=1, prefix="probabilities")
    return _model(g, height, width, probs, "probabilities", head.w2.shape[1], doc)
