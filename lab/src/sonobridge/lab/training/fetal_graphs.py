"""ONNX graph of the fetal-skull segmenter: a compact U-Net written from its folded weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from sonobridge.lab.training.graphs import _Graph, checked_model

Conv = tuple[np.ndarray, np.ndarray]


@dataclass
class UnetWeights:
    """U-Net weights with batch norm folded in: per level two 3x3 convolutions (weight, bias)."""

    down: list[list[Conv]]
    up: list[Conv]
    merge: list[list[Conv]]
    head: Conv

    def arrays(self) -> dict[str, np.ndarray]:
        """Return the weights as named arrays (for caching with numpy)."""
        out: dict[str, np.ndarray] = {}
        for part, blocks in (("down", self.down), ("merge", self.merge)):
            for i, block in enumerate(blocks):
                for j, (w, b) in enumerate(block):
                    out[f"{part}.{i}.{j}.w"], out[f"{part}.{i}.{j}.b"] = w, b
        for i, (w, b) in enumerate(self.up):
            out[f"up.{i}.w"], out[f"up.{i}.b"] = w, b
        out["head.w"], out["head.b"] = self.head
        return out

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> UnetWeights:
        """Rebuild from arrays()."""
        levels = sum(1 for k in a if k.startswith("down.") and k.endswith(".0.w"))

        def blocks(part: str, n: int) -> list[list[Conv]]:
            return [
                [(a[f"{part}.{i}.{j}.w"], a[f"{part}.{i}.{j}.b"]) for j in (0, 1)] for i in range(n)
            ]

        return cls(
            down=blocks("down", levels),
            up=[(a[f"up.{i}.w"], a[f"up.{i}.b"]) for i in range(levels - 1)],
            merge=blocks("merge", levels - 1),
            head=(a["head.w"], a["head.b"]),
        )

    def parameter_count(self) -> int:
        """Return the number of weights (after folding)."""
        return int(sum(v.size for v in self.arrays().values()))


def _conv_relu(g: _Graph, x: str, conv: Conv) -> str:
    w, b = conv
    y = g.op(
        "Conv", [x, g.const(w.astype(np.float32)), g.const(b.astype(np.float32))], pads=[1] * 4
    )
    return g.op("Relu", [y])


def segmentation_model(
    height: int, width: int, weights: UnetWeights, temperature: float, doc: str = ""
) -> onnx.ModelProto:
    """Return the half-resolution U-Net with a tempered softmax: [N,1,H,W] -> [N,2,H,W]."""
    g = _Graph()
    x = g.op("AveragePool", ["image"], kernel_shape=[2, 2], strides=[2, 2])
    skips = []
    for i, block in enumerate(weights.down):
        if i:
            x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
        for conv in block:
            x = _conv_relu(g, x, conv)
        skips.append(x)
    for (uw, ub), block, skip in zip(weights.up, weights.merge, reversed(skips[:-1]), strict=True):
        up = g.op(
            "ConvTranspose",
            [x, g.const(uw.astype(np.float32)), g.const(ub.astype(np.float32))],
            kernel_shape=[2, 2],
            strides=[2, 2],
        )
        x = g.op("Concat", [skip, up], axis=1)
        for conv in block:
            x = _conv_relu(g, x, conv)
    hw, hb = weights.head
    logits = g.op("Conv", [x, g.const(hw.astype(np.float32)), g.const(hb.astype(np.float32))])
    # Bilinear with half-pixel centres: what torch's interpolate(align_corners=False) does.
    full = g.op(
        "Resize",
        [logits, "", g.const(np.array([1, 1, 2, 2], dtype=np.float32))],
        mode="linear",
        coordinate_transformation_mode="half_pixel",
    )
    scaled = g.op("Div", [full, g.const(np.float32(temperature))])
    probs = g.op("Softmax", [scaled], axis=1)
    g.nodes.append(helper.make_node("Identity", [probs], ["probabilities"]))
    graph = helper.make_graph(
        g.nodes,
        "sonobridge-fetal-skull",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, height, width])],
        [
            helper.make_tensor_value_info(
                "probabilities", TensorProto.FLOAT, ["N", 2, height, width]
            )
        ],
        initializer=g.inits,
    )
    return checked_model(graph, doc)
