"""The view check's reference frames: the ONNX graph's distances equal the lab's numpy ones."""

import numpy as np
import onnxruntime as ort

from sonobridge.inference.imaging.preprocess import InputSpec, to_tensor
from sonobridge.lab.training.graphs import FeatureConfig, MlpHead, classifier_model, feature_model
from sonobridge.lab.training.references import (
    OUTPUT,
    ReferenceSet,
    nearest_agrees,
    with_references,
)

SPEC = InputSpec("image", 64, 64)
CONFIG = FeatureConfig(size=64)


def _session(model) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _frames(rng: np.random.Generator, n: int) -> np.ndarray:
    images = [(rng.random((90, 120)) * rng.uniform(40, 255)).astype(np.uint8) for _ in range(n)]
    return np.concatenate([to_tensor(img, SPEC) for img in images])


def test_reference_distances_in_the_graph_match_numpy_and_pick_the_same_nearest():
    rng = np.random.default_rng(3)
    x = _frames(rng, 24)
    feats = _session(feature_model(CONFIG, SPEC.name)).run(["features"], {SPEC.name: x})[0]
    labels = np.arange(24) % 3
    real = np.arange(24) % 4 != 0
    refs = ReferenceSet.of(feats[:18], labels[:18], real[:18], 4, dims=8)
    f = feats.shape[1]
    head = MlpHead(
        feats.mean(axis=0),
        feats.std(axis=0) + 1e-6,
        rng.normal(size=(f, 8)),
        np.zeros(8),
        rng.normal(size=(8, 4)),
        np.zeros(4),
    )
    model = with_references(
        classifier_model(CONFIG, head, {"temperature": 1.0}, "softmax", SPEC.name), refs
    )
    got = _session(model).run([OUTPUT], {SPEC.name: x})[0]
    want = refs.distances(feats)
    # Four views, then the nearest generator frame.
    assert got.shape == (24, 5)
    # View 3 has no real reference frame: it is never the nearest.
    assert (got[:, 3] > 1e5).all() and (got.argmin(axis=1) == want.argmin(axis=1)).all()
    keep = [0, 1, 2, 4]
    np.testing.assert_allclose(got[:, keep], want[:, keep], rtol=1e-3, atol=1e-3)
    # A training frame is its own nearest reference (distance ~0, float16 points): in its
    # view's column when real, in the generator column when not.
    own = np.where(real[:18], labels[:18], 4)
    assert (want[np.arange(18), own] < 1e-3 * want[:18, keep].max()).all()


def test_a_top_class_stands_unless_its_nearest_reference_is_a_real_frame_of_another():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1]])
    # Columns: nearest real frame of class 0, of class 1, nearest generator frame.
    distances = np.array([[0.2, 3.0, 1.0], [3.0, 0.2, 1.0], [3.0, 2.0, 0.1]])
    assert nearest_agrees(probs, distances).tolist() == [True, False, True]
