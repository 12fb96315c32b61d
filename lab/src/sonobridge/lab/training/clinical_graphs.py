"""ONNX pixel-segmentation graphs: fixed multi-scale local features and a 1x1-conv MLP head."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper

from sonobridge.lab.training.graphs import MlpHead, _Graph, checked_model


def _pool(g: _Graph, x: str, k: int) -> str:
    return g.op(
        "AveragePool",
        [x],
        kernel_shape=[k, k],
        strides=[1, 1],
        pads=[k // 2] * 4,
        count_include_pad=0,
    )


def _features(g: _Graph, x: str, size: int, scales: tuple[int, ...]) -> str:
    """Append per-pixel features; return the [N, F, S, S] tensor name."""
    parts = [x]
    means = {k: _pool(g, x, k) for k in scales}
    parts += list(means.values())
    sq = g.op("Mul", [x, x])
    for k in scales[1:3]:
        var = g.op("Sub", [_pool(g, sq, k), g.op("Mul", [means[k], means[k]])])
        parts.append(g.op("Sqrt", [g.op("Add", [g.op("Relu", [var]), g.const(np.float32(1e-6))])]))
    for small, big in itertools.pairwise(scales):
        parts.append(g.op("Sub", [means[small], means[big]]))
    # Cysts enhance and solid lesions shadow what lies behind them: compare below with above.
    half = scales[-2]
    k = np.zeros((2, 1, 2 * half + 1, 5), dtype=np.float32)
    k[0, 0, half + 3 :, :] = 1.0 / ((half - 2) * 5)
    k[1, 0, : half - 2, :] = 1.0 / ((half - 2) * 5)
    below_above = g.op("Conv", [x, g.const(k, "post_w")], pads=[half, 2, half, 2])
    parts.append(below_above)
    inside = g.op(
        "Sigmoid",
        [g.op("Mul", [g.op("Sub", [x, g.const(np.float32(0.02))]), g.const(np.float32(200.0))])],
    )
    parts.append(_pool(g, inside, scales[-2]))
    rows = np.broadcast_to(np.linspace(0, 1, size, dtype=np.float32)[:, None], (size, size))
    zero = g.op("Mul", [x, g.const(np.float32(0.0))])
    parts.append(g.op("Add", [zero, g.const(np.ascontiguousarray(rows)[None, None])]))
    return g.op("Concat", parts, axis=1, prefix="features")


def _model(g: _Graph, size: int, outputs: list[tuple[str, str, int | None]], doc: str = ""):
    final = []
    for tensor, name, width in outputs:
        g.nodes.append(helper.make_node("Identity", [tensor], [name]))
        final.append(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", width, size, size])
        )
    graph = helper.make_graph(
        g.nodes,
        "sonobridge-segmentation",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, size, size])],
        final,
        initializer=g.inits,
    )
    return checked_model(graph, doc)


def pixel_feature_model(size: int, scales: tuple[int, ...]) -> onnx.ModelProto:
    """Return the graph mapping [N,1,S,S] images to [N,F,S,S] per-pixel features."""
    g = _Graph()
    feats = _features(g, "image", size, scales)
    return _model(g, size, [(feats, "features", None)])


def segmentation_model(
    size: int, scales: tuple[int, ...], head: MlpHead, temperature: float, doc: str = ""
) -> onnx.ModelProto:
    """Return features + per-pixel MLP (as 1x1 convolutions) + tempered softmax over classes."""
    g = _Graph()
    feats = _features(g, "image", size, scales)
    # Standardisation folds into the first layer: w' = w / std, b' = b - (mean / std) @ w.
    w1 = (head.w1 / head.std[:, None]).T.astype(np.float32)[:, :, None, None]
    b1 = (head.b1 - (head.mean / head.std) @ head.w1).astype(np.float32)
    h = g.op("Relu", [g.op("Conv", [feats, g.const(w1, "w1"), g.const(b1, "b1")])])
    w2 = head.w2.T.astype(np.float32)[:, :, None, None]
    logits = g.op("Conv", [h, g.const(w2, "w2"), g.const(head.b2.astype(np.float32), "b2")])
    scaled = g.op("Div", [logits, g.const(np.float32(temperature))])
    probs = g.op("Softmax", [scaled], axis=1, prefix="probabilities")
    n_out = head.w2.shape[1]
    return _model(g, size, [(probs, "probabilities", n_out)], doc)
