"""Reference frames inside a classifier's ONNX graph: how near a frame is to each view's nearest
real training frame and to the nearest generator frame, so that serving can refuse a view when
the frame most resembles a real frame of another view."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUTPUT = "reference_distance"
# Beyond any real distance: stands for "no reference frame of this kind".
_FAR = 1e6


@dataclass(frozen=True)
class ReferenceSet:
    """Training frames projected on their leading principal components, with their classes
    and whether each is real (a generator frame vouches for no view: the generator's scenes
    resemble each other more than real anatomy does)."""

    mean: np.ndarray
    std: np.ndarray
    projection: np.ndarray
    points: np.ndarray
    labels: np.ndarray
    real: np.ndarray
    n_classes: int

    @classmethod
    def of(
        cls, feats: np.ndarray, labels: np.ndarray, real: np.ndarray, n_classes: int, dims: int
    ) -> ReferenceSet:
        """Standardise the features, keep `dims` principal components, store every frame."""
        mean = feats.mean(axis=0)
        std = feats.std(axis=0) + 1e-6
        z = (feats - mean) / std
        _, _, vt = np.linalg.svd(z, full_matrices=False)
        projection = vt[:dims].T
        # float16 points: half the model's size, far below the distances' spread.
        points = (z @ projection).astype(np.float16).astype(np.float64)
        return cls(mean, std, projection, points, labels.astype(int), real.astype(bool), n_classes)

    def masks(self) -> np.ndarray:
        """[C + 1, M]: row c selects real frames of class c, the last row generator frames."""
        rows = [(self.labels == c) & self.real for c in range(self.n_classes)]
        return np.stack([*rows, ~self.real])

    def distances(self, feats: np.ndarray) -> np.ndarray:
        """Squared distances [N, C + 1]: to each class's nearest real frame, then to the nearest
        generator frame."""
        p = (feats - self.mean) / self.std @ self.projection
        d2 = ((p[:, None, :] - self.points[None, :, :]) ** 2).sum(axis=2)
        return np.stack(
            [d2[:, m].min(axis=1) if m.any() else np.full(len(feats), _FAR) for m in self.masks()],
            axis=1,
        )


def nearest_agrees(probabilities: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Whether each frame's top class is not contradicted: its nearest reference is a generator
    frame or a real frame of the top class."""
    nearest = distances.argmin(axis=1)
    return np.asarray(
        (nearest == probabilities.shape[1]) | (nearest == probabilities.argmax(axis=1))
    )


def with_references(model: onnx.ModelProto, refs: ReferenceSet) -> onnx.ModelProto:
    """Add the `reference_distance` output [N, C + 1] to a classifier built by classifier_model."""
    graph = model.graph
    feats = next(n.output[0] for n in graph.node if n.output[0].startswith("features"))
    consts = {
        "ref_mean": refs.mean.astype(np.float32),
        "ref_std": refs.std.astype(np.float32),
        "ref_projection": refs.projection.astype(np.float32),
        "ref_points_t": refs.points.T.astype(np.float16),
        "ref_points_sq": (refs.points**2).sum(axis=1).astype(np.float32),
        "ref_mask": refs.masks(),
        "ref_far": np.float32(_FAR),
        "ref_two": np.float32(2.0),
        "ref_axis": np.array([1], dtype=np.int64),
    }
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    node = helper.make_node
    graph.node.extend(
        [
            node("Sub", [feats, "ref_mean"], ["ref_centred"]),
            node("Div", ["ref_centred", "ref_std"], ["ref_z"]),
            node("MatMul", ["ref_z", "ref_projection"], ["ref_p"]),
            node("Cast", ["ref_points_t"], ["ref_points_t32"], to=TensorProto.FLOAT),
            node("MatMul", ["ref_p", "ref_points_t32"], ["ref_dot"]),
            node("Mul", ["ref_p", "ref_p"], ["ref_p_sq"]),
            node("ReduceSum", ["ref_p_sq", "ref_axis"], ["ref_p_norm"], keepdims=1),
            node("Mul", ["ref_dot", "ref_two"], ["ref_dot2"]),
            node("Sub", ["ref_p_norm", "ref_dot2"], ["ref_partial"]),
            node("Add", ["ref_partial", "ref_points_sq"], ["ref_d2"]),
            node("Unsqueeze", ["ref_d2", "ref_axis"], ["ref_d2_c"]),
            node("Where", ["ref_mask", "ref_d2_c", "ref_far"], ["ref_masked"]),
            node("ReduceMin", ["ref_masked"], [OUTPUT], axes=[2], keepdims=0),
        ]
    )
    graph.output.append(
        helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", refs.n_classes + 1])
    )
    onnx.checker.check_model(model, full_check=True)
    return model
