"""Service parts without servers: provider choice (CUDA path), settings, the object-store
model registry, proto mapping of verdicts, single-frame selection."""

from __future__ import annotations

import io

import numpy as np
import onnxruntime as ort
import pytest

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.inference.adapters.model_store import (
    ObjectStoreModelSource,
    publish_missing_models,
)
from sonobridge.inference.domain.errors import InvalidImage, ModelIntegrityError, ModelNotFound
from sonobridge.inference.domain.probe_health import (
    count_dark_columns,
    count_dark_lines,
    sector_apex,
)
from sonobridge.inference.domain.quality import QualityVerdict, assess, summarise_exam
from sonobridge.inference.entrypoints import messages
from sonobridge.inference.imaging.decode import FrameSelection, decode_image
from sonobridge.inference.modules import load_clinical_modules
from sonobridge.inference.runtime.batcher import BatchPolicy
from sonobridge.inference.runtime.providers import SessionConfig, session_plan
from sonobridge.inference.runtime.registry import ModelRegistry, packaged_models
from sonobridge.inference.settings import InferenceSettings
from sonobridge.lab.synthetic import AcquisitionSpec, Fault, generate_exam
from sonobridge.lab.synthetic.dicom import ultrasound_dicom_bytes

GPU_HOST = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_cuda_is_chosen_with_its_device_options_when_the_runtime_offers_it():
    config = SessionConfig(providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    providers, options = session_plan(config, GPU_HOST)
    assert providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert options[0]["device_id"] == "0"
    cpu_only, _ = session_plan(config, ["CPUExecutionProvider"])
    assert cpu_only == ["CPUExecutionProvider"]


def test_registry_asks_onnxruntime_for_cuda_first_on_a_gpu_host(loop):
    requested: list[list[str]] = []

    def session(model, opts, providers, provider_options):
        # Record the request, then build the CPU session this machine can run.
        requested.append(list(providers))
        return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])

    registry = ModelRegistry(
        packaged_models(),
        SessionConfig(),
        BatchPolicy(max_batch_size=2),
        available_providers=GPU_HOST,
        session_factory=session,
    )
    loop.run_until_complete(registry.load("probe-health"))
    try:
        assert requested == [GPU_HOST]
    finally:
        loop.run_until_complete(registry.close())


def test_settings_parse_provider_and_model_lists(monkeypatch):
    monkeypatch.setenv("INFERENCE__PROVIDERS", "CUDAExecutionProvider, CPUExecutionProvider")
    monkeypatch.setenv("INFERENCE__MODELS", "image-quality@1.0.0,probe-health")
    from sonobridge.inference.settings import Settings

    cfg = Settings().inference
    assert cfg.provider_list() == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert cfg.model_refs() == [("image-quality", "1.0.0"), ("probe-health", None)]
    with pytest.raises(ValueError, match="provider"):
        InferenceSettings(providers=" , ")


def test_packaged_models_are_published_once_and_read_back_byte_for_byte(tmp_path):
    store = LocalDirObjectStore(tmp_path)
    written = publish_missing_models(packaged_models(), store)
    assert "models/image-quality/1.0.0/model.onnx" in written
    assert written.index("models/image-quality/1.0.0/model.onnx") < written.index(
        "models/image-quality/1.0.0/card.json"
    )
    assert publish_missing_models(packaged_models(), store) == []
    source = ObjectStoreModelSource(store)
    key = "models/probe-health/1.0.0/model.onnx"
    assert source.get_bytes(key) == packaged_models().get_bytes(key)
    with pytest.raises(KeyError):
        source.get_bytes("models/absent/1.0.0/card.json")


def test_clinical_modules_load_from_the_object_store_including_a_card_without_a_network(
    tmp_path,
):
    store = LocalDirObjectStore(tmp_path)
    written = publish_missing_models(packaged_models(), store)
    # The carotid module is measurement only: its version holds a card and nothing else.
    assert "models/carotid-imt/1.0.0/card.json" in written
    assert not any(k.startswith("models/carotid-imt/1.0.0/model") for k in written)
    assert {"models/kidney/1.0.0/model.onnx", "models/focal-lesions/1.0.0/model.onnx"} <= set(
        written
    )
    registry = ModelRegistry(
        ObjectStoreModelSource(store), SessionConfig(providers=("CPUExecutionProvider",))
    )
    assert {"carotid-imt", "kidney", "focal-lesions", "fetal-biometry"} <= set(registry.available())
    assert registry.card("carotid-imt", "1.0.0").sha256 is None
    with pytest.raises(ModelNotFound, match=r"carotid-imt version 1\.0\.0 has no model\.onnx"):
        registry.model_bytes("carotid-imt", "1.0.0")
    modules = {m.name: m for m in load_clinical_modules(registry)}
    assert set(modules) == {"carotid-imt", "kidney", "focal-lesions", "fetal-biometry"}
    assert modules["carotid-imt"].sha256 == ""
    for name in ("kidney", "focal-lesions", "fetal-biometry"):
        assert len(modules[name].sha256) == 64
        assert modules[name].sha256 == registry.card(name, "1.0.0").sha256


def test_a_tampered_module_network_in_the_object_store_is_refused(tmp_path):
    store = LocalDirObjectStore(tmp_path)
    publish_missing_models(packaged_models(), store)
    key = "models/kidney/1.0.0/model.onnx"
    data = bytearray(ObjectStoreModelSource(store).get_bytes(key))
    data[-1] ^= 0xFF
    store.put(key, io.BytesIO(bytes(data)), length=len(data), content_type="application/onnx")
    registry = ModelRegistry(ObjectStoreModelSource(store))
    with pytest.raises(ModelIntegrityError, match=r"kidney 1\.0\.0: sha256"):
        load_clinical_modules(registry)


def test_quality_reasons_and_advice_map_to_the_contract():
    bad = QualityVerdict(False, "lost_contact", 0.9, {"acceptable": 0.1, "lost_contact": 0.9})
    good = QualityVerdict(True, None, 0.95, {"acceptable": 0.95, "lost_contact": 0.05})
    a_bad = messages.quality_assessment(assess(bad, "1.0.0"))
    a_good = messages.quality_assessment(assess(good, "1.0.0"))
    assert list(a_bad.reasons) == [events_pb2.QUALITY_REASON_LOST_CONTACT]
    assert a_bad.score == pytest.approx(0.1) and a_bad.confidence == pytest.approx(0.9)
    assert a_good.acceptable and not a_good.reasons and not a_good.advice
    exam = messages.quality_assessment(
        summarise_exam([assess(good, "1.0.0"), assess(bad, "1.0.0")])
    )
    assert not exam.acceptable
    assert list(exam.reasons) == [events_pb2.QUALITY_REASON_LOST_CONTACT]
    assert exam.score == pytest.approx(0.1)
    assert messages.exam_type_name(events_pb2.EXAM_TYPE_CAROTID) == "carotid"
    assert messages.exam_type_value("kidney") == events_pb2.EXAM_TYPE_KIDNEY


def test_one_frame_of_a_cine_is_selected_and_out_of_range_is_refused():
    cine = np.stack([np.full((32, 32), v, np.uint8) for v in (10, 200, 90)])
    data = ultrasound_dicom_bytes(cine, (0.2, 0.2))
    decoded = decode_image(data, FrameSelection(1))
    assert decoded.frame_indices == [1] and int(decoded.frames[0].mean()) == 200
    with pytest.raises(InvalidImage, match="frame 3 requested but the object has 3"):
        decode_image(data, FrameSelection(3))


def test_dark_columns_are_found_only_on_a_probe_with_dead_elements():
    spec = AcquisitionSpec(probe="linear")
    clean = generate_exam(5, spec, n_frames=4).pixels()
    dead = generate_exam(
        5, AcquisitionSpec(probe="linear", faults=frozenset({Fault.DEAD_ELEMENTS})), n_frames=4
    ).pixels()
    assert count_dark_columns(clean).columns == 0
    found = count_dark_columns(dead)
    assert found.columns > 0 and 0 < found.fraction < 0.5


@pytest.mark.parametrize(("probe", "exam_type"), [("convex", "abdomen"), ("phased", "cardiac")])
def test_dead_lines_of_a_sector_probe_are_counted_along_the_fan(probe, exam_type):
    def exam(faults):
        spec = AcquisitionSpec(exam_type=exam_type, probe=probe, faults=frozenset(faults))
        return generate_exam(108, spec, n_frames=4)

    clean, dead = exam(()), exam({Fault.DEAD_ELEMENTS})
    # The apex is above the skin line, on the fan's axis (the image's middle column).
    apex = sector_apex(clean.pixels().mean(axis=0).astype(np.float64))
    assert apex is not None and apex[0] < 30 and abs(apex[1] - 128) < 8
    assert count_dark_lines(clean.pixels()).columns == 0
    truth = len(dead.frames[0].truth.dead_lines) / 128
    found = count_dark_lines(dead.pixels())
    # The rays cross many columns and fill none: counting columns misses what the fan shows.
    assert found.columns > 0 and 0.3 * truth <= found.fraction <= 1.5 * truth
    assert count_dark_columns(dead.pixels()).fraction < found.fraction


def test_a_linear_view_has_no_apex_and_its_lines_are_its_columns():
    dead = generate_exam(
        5, AcquisitionSpec(probe="linear", faults=frozenset({Fault.DEAD_ELEMENTS})), n_frames=4
    ).pixels()
    assert sector_apex(dead.mean(axis=0).astype(np.float64)) is None
    assert count_dark_lines(dead) == count_dark_columns(dead)
