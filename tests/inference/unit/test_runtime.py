"""Serving runtime: batched results equal a plain session's, load shedding, registry rules."""

import asyncio
import json
import shutil
import threading

import numpy as np
import onnxruntime as ort
import pytest

from sonobridge.inference.domain.errors import (
    InvalidInput,
    ModelIntegrityError,
    ModelNotFound,
    ModelNotLoaded,
    Overloaded,
)
from sonobridge.inference.imaging.preprocess import to_tensor
from sonobridge.inference.runtime.batcher import BatchPolicy, MicroBatcher
from sonobridge.inference.runtime.providers import (
    PREFERRED_PROVIDERS,
    SessionConfig,
    choose_providers,
)
from sonobridge.inference.runtime.registry import (
    PACKAGED_MODELS_ROOT,
    LocalDirModelSource,
    ModelRegistry,
    packaged_models,
)
from sonobridge.inference.runtime.server import ModelServer
from sonobridge.lab.synthetic import AcquisitionSpec, Fault, generate_frame


def _frames(n):
    faults = [(), (Fault.LOW_GAIN,), (Fault.DEAD_ELEMENTS,), (Fault.MOTION_BLUR,)]
    return np.stack(
        [
            generate_frame(300 + i, AcquisitionSpec(faults=frozenset(faults[i % 4]))).image
            for i in range(n)
        ]
    )


@pytest.mark.parametrize("name", ["image-quality", "probe-health"])
def test_batched_results_equal_a_plain_onnxruntime_session(loop, registry, name):
    model = registry.get(name)
    x = to_tensor(_frames(24), model.input_spec)
    raw = PACKAGED_MODELS_ROOT / "models" / name / model.card.version / "model.onnx"
    plain = ort.InferenceSession(str(raw), providers=["CPUExecutionProvider"])
    expected = plain.run(["probabilities"], {"image": x})[0]

    async def concurrent():
        return await asyncio.gather(*(registry.infer(name, x[i : i + 1]) for i in range(len(x))))

    served = np.concatenate([o["probabilities"] for o in loop.run_until_complete(concurrent())])
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)


def test_concurrent_requests_are_grouped_into_batches(loop):
    sizes = []

    def run(x):
        sizes.append(x.shape[0])
        return {"y": x.sum(axis=(1, 2, 3))[:, None]}

    async def scenario():
        b = MicroBatcher("sum", run, BatchPolicy(max_batch_size=8, max_wait_ms=50, max_queue=64))
        await b.start()
        xs = [np.full((1, 1, 2, 2), i, dtype=np.float32) for i in range(20)]
        outs = await asyncio.gather(*(b.infer(x) for x in xs))
        await b.stop()
        return outs

    outs = loop.run_until_complete(scenario())
    assert [float(o["y"][0, 0]) for o in outs] == [4.0 * i for i in range(20)]
    assert sum(sizes) == 20 and max(sizes) <= 8 and len(sizes) < 20


def test_full_queue_sheds_load_with_overloaded(loop):
    release = threading.Event()

    def run(x):
        release.wait(5)
        return {"y": x}

    async def scenario():
        b = MicroBatcher("slow", run, BatchPolicy(max_batch_size=1, max_wait_ms=0, max_queue=2))
        await b.start()
        first = asyncio.ensure_future(b.infer(np.zeros((1, 1), np.float32)))
        await asyncio.sleep(0.05)  # the worker now holds `first` inside run()
        queued = [asyncio.ensure_future(b.infer(np.zeros((1, 1), np.float32))) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded, match="retry later"):
            await b.infer(np.zeros((1, 1), np.float32))
        release.set()
        done = await asyncio.gather(first, *queued)
        await b.stop()
        return done

    assert len(loop.run_until_complete(scenario())) == 3


def test_providers_prefer_tensorrt_then_cuda_and_keep_cpu_as_fallback():
    assert choose_providers(["CPUExecutionProvider"], PREFERRED_PROVIDERS) == [
        "CPUExecutionProvider"
    ]
    gpu = ["CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(gpu, PREFERRED_PROVIDERS) == [*gpu[1::-1], "CPUExecutionProvider"]
    assert choose_providers(gpu, ("CUDAExecutionProvider",)) == [*gpu[:1], "CPUExecutionProvider"]


def test_registry_lists_pins_and_unloads_versions(loop, registry, tmp_path):
    available = registry.available()
    # The adapted and recalibrated versions sit beside 1.0.0 in shadow; 1.0.0 stays the default.
    assert available["probe-health"][0] == "1.0.0"
    assert available["image-quality"][0] == "1.0.0"
    assert registry.card("image-quality").version == "1.0.0"
    assert registry.card("probe-health").version == "1.0.0"
    assert registry.is_ready(["image-quality", "probe-health"])
    assert registry.get("probe-health").provider == "CPUExecutionProvider"
    registry.pin("image-quality", "1.0.0")
    with pytest.raises(ModelNotLoaded):
        registry.pin("image-quality", "9.9.9")
    loop.run_until_complete(registry.unload("probe-health"))
    assert not registry.is_ready(["image-quality", "probe-health"])
    with pytest.raises(ModelNotLoaded):
        registry.get("probe-health")


@pytest.mark.parametrize(("name", "version"), [("no-such-model", None), ("0", "1.0.0")])
def test_a_model_the_registry_does_not_store_is_not_found(registry, name, version):
    with pytest.raises(ModelNotFound, match="no model named"):
        registry.get(name, version)


class _RecordingSource:
    """The packaged models, noting every prefix the registry lists."""

    def __init__(self, inner, listed):
        self._inner, self._listed = inner, listed

    def list(self, prefix):
        self._listed.append(prefix)
        return self._inner.list(prefix)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_a_miss_lists_only_the_named_models_prefix_never_the_whole_store():
    listed: list[str] = []
    registry = ModelRegistry(
        _RecordingSource(packaged_models(), listed),
        SessionConfig(providers=("CPUExecutionProvider",)),
        BatchPolicy(max_batch_size=1, max_wait_ms=1, max_queue=4),
    )
    with pytest.raises(ModelNotFound):
        registry.get("no-such-model")
    with pytest.raises(ModelNotFound, match="no model named"):
        registry.get("x" * 100_000)  # not a key segment: refused without listing anything
    assert listed == ["models/no-such-model/"]


def test_a_card_without_a_version_lists_only_its_models_prefix():
    listed: list[str] = []
    registry = ModelRegistry(
        _RecordingSource(packaged_models(), listed),
        SessionConfig(providers=("CPUExecutionProvider",)),
        BatchPolicy(max_batch_size=1, max_wait_ms=1, max_queue=4),
    )
    assert registry.card("image-quality").name == "image-quality"
    assert listed == ["models/image-quality/"]


def test_a_version_the_registry_does_not_store_is_not_found(registry):
    with pytest.raises(ModelNotFound, match=r"'9\.9\.9' is not in the registry"):
        registry.get("image-quality", "9.9.9")


def test_a_stored_version_that_is_not_loaded_is_unavailable_here(registry):
    stored = registry.available()["image-quality"]
    unloaded = [v for v in stored if not registry.is_loaded("image-quality", v)]
    assert unloaded, "every stored image-quality version is loaded: nothing to check"
    with pytest.raises(ModelNotLoaded, match="is not loaded"):
        registry.get("image-quality", unloaded[0])


def test_wrong_tensor_shape_is_rejected_with_the_expected_spec(loop, registry):
    with pytest.raises(InvalidInput, match=r"float32 \[N, 1, 128, 128\]"):
        loop.run_until_complete(
            registry.infer("image-quality", np.zeros((1, 1, 64, 64), np.float32))
        )


def test_tampered_model_file_fails_its_card_hash(loop, tmp_path):
    shutil.copytree(PACKAGED_MODELS_ROOT / "models", tmp_path / "models")
    onnx_path = tmp_path / "models" / "probe-health" / "1.0.0" / "model.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    reg = ModelRegistry(LocalDirModelSource(tmp_path))
    with pytest.raises(ModelIntegrityError, match="does not match card"):
        loop.run_until_complete(reg.load("probe-health"))


def test_a_version_registered_in_shadow_is_served_only_when_named(loop, tmp_path):
    shutil.copytree(PACKAGED_MODELS_ROOT / "models", tmp_path / "models")
    base = tmp_path / "models" / "probe-health" / "1.0.0"
    shadow = tmp_path / "models" / "probe-health" / "2.0.0"
    shutil.copytree(base, shadow)
    card = json.loads((shadow / "card.json").read_text())
    card["version"] = "2.0.0"
    card["registration"] = {"stage": "shadow"}
    (shadow / "card.json").write_text(json.dumps(card))
    reg = ModelRegistry(LocalDirModelSource(tmp_path))
    assert reg.available()["probe-health"][-1] == "2.0.0"
    assert reg.card("probe-health").version == "1.0.0"
    assert loop.run_until_complete(reg.load("probe-health")).card.version == "1.0.0"
    assert loop.run_until_complete(reg.load("probe-health", "2.0.0")).card.version == "2.0.0"
    loop.run_until_complete(reg.unload("probe-health"))


def test_a_retired_version_is_never_the_default_nor_loaded_as_a_shadow(loop, tmp_path):
    shutil.copytree(PACKAGED_MODELS_ROOT / "models", tmp_path / "models")
    base = tmp_path / "models" / "probe-health" / "1.0.0"
    for version, stage in (("2.0.0", "shadow"), ("3.0.0", "retired")):
        shutil.copytree(base, base.parent / version)
        card = json.loads((base.parent / version / "card.json").read_text())
        card["version"] = version
        card["registration"] = {"stage": stage, "reason": "superseded"}
        (base.parent / version / "card.json").write_text(json.dumps(card))
    server = ModelServer(ModelRegistry(LocalDirModelSource(tmp_path)), run_shadows=True)
    try:
        server.load_and_pin([("probe-health", "1.0.0")])
        # The retired card stays listed and readable (its history); it just runs on nothing.
        assert server.registry.available()["probe-health"][-1] == "3.0.0"
        assert server.registry.card("probe-health").version == "1.0.0"
        shadows = server.shadow_versions("probe-health")
        assert "3.0.0" not in shadows and "2.0.0" in shadows
        assert not server.registry.is_loaded("probe-health", "3.0.0")
    finally:
        server.close()
