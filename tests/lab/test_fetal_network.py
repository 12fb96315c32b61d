"""The fetal-skull U-Net's ONNX graph: the serving contract, and torch's numbers where torch is."""

import numpy as np
import onnxruntime as ort
import pytest

from sonobridge.lab.training.fetal_graphs import UnetWeights, segmentation_model

WIDTHS = (4, 8, 8)


def _random_weights(rng: np.random.Generator) -> UnetWeights:
    def conv(cin: int, cout: int, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
        w = rng.normal(0, 0.3, (cout, cin, k, k)).astype(np.float32)
        return w, rng.normal(0, 0.1, cout).astype(np.float32)

    down, cin = [], 1
    for w in WIDTHS:
        down.append([conv(cin, w), conv(w, w)])
        cin = w
    up, merge = [], []
    for w in reversed(WIDTHS[:-1]):
        # ConvTranspose weights are [in, out, k, k].
        up.append((rng.normal(0, 0.3, (cin, w, 2, 2)).astype(np.float32), np.zeros(w, np.float32)))
        merge.append([conv(2 * w, w), conv(w, w)])
        cin = w
    return UnetWeights(down, up, merge, conv(cin, 2, 1))


def _session(weights: UnetWeights, temperature: float = 1.0) -> ort.InferenceSession:
    model = segmentation_model(32, 48, weights, temperature)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_the_graph_maps_an_image_to_two_class_probabilities_at_the_input_size():
    weights = _random_weights(np.random.default_rng(0))
    x = np.random.default_rng(1).random((2, 1, 32, 48), dtype=np.float32)
    probs = _session(weights).run(["probabilities"], {"image": x})[0]
    assert probs.shape == (2, 2, 32, 48) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_a_higher_temperature_softens_the_probabilities():
    weights = _random_weights(np.random.default_rng(0))
    x = np.random.default_rng(1).random((1, 1, 32, 48), dtype=np.float32)
    sharp = _session(weights, 1.0).run(["probabilities"], {"image": x})[0]
    soft = _session(weights, 4.0).run(["probabilities"], {"image": x})[0]
    assert np.abs(soft - 0.5).mean() < np.abs(sharp - 0.5).mean()


def test_weights_survive_the_cache_round_trip():
    weights = _random_weights(np.random.default_rng(0))
    again = UnetWeights.from_arrays(weights.arrays())
    assert again.arrays().keys() == weights.arrays().keys()
    for key, value in weights.arrays().items():
        np.testing.assert_array_equal(again.arrays()[key], value)
    assert again.parameter_count() == weights.parameter_count()


def test_the_onnx_graph_computes_what_the_trained_torch_network_computes():
    torch = pytest.importorskip("torch", reason="torch comes with the lab's 'train' extra")
    from sonobridge.lab.training.fetal_unet import Unet

    torch.manual_seed(0)
    net = Unet(WIDTHS)
    # Batch norm statistics away from their initial values, so that folding them is tested.
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(4, 1, 32, 48) * 2)
    net.eval()
    x = np.random.default_rng(1).random((2, 1, 32, 48), dtype=np.float32)
    with torch.no_grad():
        want = torch.softmax(net(torch.from_numpy(x)) / 2.0, dim=1).numpy()
    got = _session(net.export_weights(), 2.0).run(["probabilities"], {"image": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
