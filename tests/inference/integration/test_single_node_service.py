"""The inference service over real gRPC and HTTP on single-node adapters (SQLite, local
directory object store, embedded event log): serving parity, quality checks, model download,
errors, and the ExamCompleted -> InferenceCompleted pipeline with redelivery."""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from inference.inference_support import start_service, store_exam, wait_for
from PIL import Image
from sqlalchemy import func, select

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import EXAM_COMPLETED, INFERENCE_COMPLETED
from sonobridge.api.inference.v1 import inference_pb2
from sonobridge.common.bus.ports import publish
from sonobridge.common.envelope import unpack, wrap
from sonobridge.common.objects.ports import read_all
from sonobridge.inference.adapters import orm
from sonobridge.inference.entrypoints.grpc_server import array_to_tensor, tensor_to_array
from sonobridge.inference.imaging.preprocess import to_tensor
from sonobridge.lab.synthetic import AcquisitionSpec, Fault, generate_frame
from sonobridge.lab.synthetic.dicom import ultrasound_dicom_bytes


def _frame(seed: int, *faults: Fault) -> np.ndarray:
    return generate_frame(seed, AcquisitionSpec(faults=frozenset(faults))).image


def _png(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def _plain_session(service, name: str) -> ort.InferenceSession:
    data = read_all(service.store, f"models/{name}/1.0.0/model.onnx")
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_reference_models_are_published_to_the_object_store_and_ready(service):
    keys = set(service.store.list("models/"))
    for name in ("image-quality", "probe-health"):
        assert {f"models/{name}/1.0.0/model.onnx", f"models/{name}/1.0.0/card.json"} <= keys
    ready = service.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["models"] == "up"


@pytest.mark.parametrize("name", ["image-quality", "probe-health"])
def test_grpc_infer_on_tensors_equals_a_plain_onnxruntime_session(service, name):
    model = service.host.deps.models.get(name)
    x = to_tensor(np.stack([_frame(40 + i, f) for i, f in enumerate(Fault)]), model.input_spec)
    expected = _plain_session(service, name).run(["probabilities"], {"image": x})[0]

    def one(i: int) -> np.ndarray:
        request = inference_pb2.InferRequest(
            model_name=name,
            tensors=inference_pb2.TensorInputs(tensors=[array_to_tensor("image", x[i : i + 1])]),
        )
        response = service.grpc.Infer(request, metadata=service.metadata())
        assert response.model_version == "1.0.0"
        outputs = {t.name: tensor_to_array(t) for t in response.outputs}
        return outputs["probabilities"]

    # Concurrent single-row calls, so the figures come through the micro-batcher.
    with ThreadPoolExecutor(8) as pool:
        served = np.concatenate(list(pool.map(one, range(len(x)))))
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)


def test_grpc_infer_on_an_encoded_image_equals_a_plain_session_on_the_card_preprocessing(service):
    frame = _frame(77, Fault.LOW_GAIN)
    model = service.host.deps.models.get("image-quality")
    expected = _plain_session(service, "image-quality").run(
        ["probabilities"], {"image": to_tensor(frame[None], model.input_spec)}
    )[0]
    response = service.grpc.Infer(
        inference_pb2.InferRequest(
            model_name="image-quality",
            image=inference_pb2.EncodedImage(data=_png(frame), media_type="image/png"),
            request_id="req-1",
        ),
        metadata=service.metadata(),
    )
    served = {t.name: tensor_to_array(t) for t in response.outputs}["probabilities"]
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)
    assert response.request_id == "req-1"
    assert response.labels[0].label == model.card.labels[int(expected.argmax())]
    assert response.labels[0].score >= response.labels[-1].score


def test_check_quality_over_grpc_and_rest_agree_and_give_the_reason(service):
    frame = _frame(91, Fault.LOW_GAIN)
    dicom = ultrasound_dicom_bytes(np.stack([_frame(90), frame]), (0.2, 0.2))
    response = service.grpc.CheckQuality(
        inference_pb2.CheckQualityRequest(
            image=inference_pb2.EncodedImage(data=dicom, media_type="application/dicom"),
            frame_index=1,
        ),
        metadata=service.metadata(),
    )
    a = response.assessment
    assert not a.acceptable
    assert list(a.reasons) == [events_pb2.QUALITY_REASON_LOW_GAIN]
    assert a.advice == "increase gain"
    assert 0.5 < a.confidence <= 1.0
    rest = service.http.post(
        "/v1/quality-checks?frame_index=1",
        content=dicom,
        headers={**service.headers(), "Content-Type": "application/dicom"},
    )
    assert rest.status_code == 200, rest.text
    body = rest.json()
    assert body["acceptable"] is False and body["reasons"] == ["low_gain"]
    assert body["score"] == pytest.approx(a.score, abs=1e-6)
    good = service.http.post(
        "/v1/quality-checks",
        content=_png(_frame(92)),
        headers={**service.headers(), "Content-Type": "image/png"},
    )
    assert good.status_code == 200 and good.json()["acceptable"] is True
    metrics = service.http.get("/metrics").text
    assert (
        'sonobridge_inference_quality_assessments_total{institution="township-a",'
        'operator="nurse-1",outcome="rescan"}'
    ) in metrics


def test_requests_without_a_token_are_refused(service):
    rest = service.http.post(
        "/v1/quality-checks", content=_png(_frame(1)), headers={"Content-Type": "image/png"}
    )
    assert rest.status_code == 401
    assert rest.headers["content-type"].startswith("application/problem+json")
    with pytest.raises(grpc.RpcError) as err:
        service.grpc.ListModels(inference_pb2.ListModelsRequest())
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_bad_input_gets_a_clear_status_and_message(service):
    md = service.metadata()
    with pytest.raises(grpc.RpcError) as err:
        service.grpc.GetModel(inference_pb2.GetModelRequest(name="no-such-model"), metadata=md)
    assert err.value.code() is grpc.StatusCode.NOT_FOUND
    assert "no-such-model" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        service.grpc.Infer(
            inference_pb2.InferRequest(
                model_name="image-quality",
                image=inference_pb2.EncodedImage(data=b"not an image", media_type="image/png"),
            ),
            metadata=md,
        )
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "JPEG, PNG or DICOM" in err.value.details()
    wrong = inference_pb2.Tensor(
        name="image", shape=[1, 1, 64, 64], dtype=inference_pb2.DATA_TYPE_FLOAT32
    )
    wrong.data = np.zeros((1, 1, 64, 64), "<f4").tobytes()
    with pytest.raises(grpc.RpcError) as err:
        service.grpc.Infer(
            inference_pb2.InferRequest(
                model_name="image-quality", tensors=inference_pb2.TensorInputs(tensors=[wrong])
            ),
            metadata=md,
        )
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "expects float32 [N, 1, 128, 128]" in err.value.details()
    rest = service.http.post(
        "/v1/quality-checks",
        content=b"GIF89a....",
        headers={**service.headers(), "Content-Type": "image/gif"},
    )
    assert rest.status_code == 415


def test_models_are_listed_and_downloadable_with_their_hash(service):
    md = service.metadata()
    listed = service.grpc.ListModels(inference_pb2.ListModelsRequest(), metadata=md).models
    assert [(m.name, m.version) for m in listed] == sorted((m.name, m.version) for m in listed)
    gating = [m for m in listed if m.name in ("image-quality", "probe-health")]
    served = {m.name: m for m in gating if m.pinned}
    assert len(served) == 2
    assert all(m.loaded and m.version == "1.0.0" for m in served.values())
    # Versions registered in shadow (adapted or recalibrated on labelled frames) are listed
    # beside the served one, never pinned.
    assert [(m.version, m.pinned) for m in gating if m.name == "image-quality"] == [
        ("1.0.0", True),
        ("1.1.0", False),
        ("1.2.0", False),
        ("1.3.0", False),
        ("1.4.0", False),
        ("1.5.0", False),
    ]
    assert [(m.version, m.pinned) for m in gating if m.name == "probe-health"] == [
        ("1.0.0", True),
        ("1.1.0", False),
    ]
    only = service.grpc.ListModels(
        inference_pb2.ListModelsRequest(task=inference_pb2.MODEL_TASK_PROBE_HEALTH), metadata=md
    ).models
    assert [m.name for m in only] == ["probe-health", "probe-health"]
    got = service.grpc.GetModel(inference_pb2.GetModelRequest(name="image-quality"), metadata=md)
    assert got.card_json.encode() == read_all(service.store, "models/image-quality/1.0.0/card.json")
    assert got.summary.task == inference_pb2.MODEL_TASK_QUALITY

    path = "/v1/models/image-quality/1.0.0/model.onnx"
    download = service.http.get(path, headers=service.headers())
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == got.summary.sha256
    assert download.headers["X-Model-SHA256"] == got.summary.sha256
    again = service.http.get(
        path, headers={**service.headers(), "If-None-Match": download.headers["ETag"]}
    )
    assert again.status_code == 304
    card_path = "/v1/models/image-quality/1.0.0/card.json"
    card = service.http.get(card_path, headers=service.headers())
    assert card.json()["disclaimer"] == "reference model, not for clinical use"
    cached = service.http.get(
        card_path, headers={**service.headers(), "If-None-Match": f"W/{card.headers['ETag']}"}
    )
    assert cached.status_code == 304 and cached.headers["ETag"] == card.headers["ETag"]


def test_full_queue_answers_unavailable_with_a_message(tmp_path, issuer):
    # One waiting slot and one row per batch: concurrent callers beyond that are shed.
    small = start_service(tmp_path, issuer, queue_size=1, max_batch_size=1, max_wait_ms=0.0)
    try:
        model = small.host.deps.models.get("probe-health")
        x = to_tensor(_frame(5)[None], model.input_spec)
        request = inference_pb2.InferRequest(
            model_name="probe-health",
            tensors=inference_pb2.TensorInputs(tensors=[array_to_tensor("image", x)]),
        )
        md = small.metadata()

        def call(_: int) -> grpc.StatusCode:
            try:
                small.grpc.Infer(request, metadata=md)
            except grpc.RpcError as exc:
                assert "retry later" in exc.details()
                return exc.code()
            return grpc.StatusCode.OK

        with ThreadPoolExecutor(48) as pool:
            codes = list(pool.map(call, range(192)))
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}
        assert grpc.StatusCode.UNAVAILABLE in codes and grpc.StatusCode.OK in codes
        assert "sonobridge_inference_requests_shed_total" in small.http.get("/metrics").text
    finally:
        small.close()


def _results(service, study: str) -> int:
    t = orm.inference_results
    with service.engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(t).where(t.c.study_instance_uid == study)
        ).scalar_one()


def test_exam_completed_yields_one_inference_completed_even_when_redelivered(service):
    exam = store_exam(
        service.store, exam_type="abdomen", instances=2, faults=(Fault.DEAD_ELEMENTS,), seed=21
    )
    study = exam.context.study_instance_uid
    event = wrap(exam, source="ingest", key=study)
    publish(service.bus, EXAM_COMPLETED, event)
    sub = service.bus.subscribe(f"test-{study}", [INFERENCE_COMPLETED])

    def mine() -> list[events_pb2.InferenceCompleted]:
        found = []
        for record in sub.poll(0.5):
            message = unpack(record.cloud_event())
            if message.context.study_instance_uid == study:
                found.append(message)
        return found

    first = wait_for(mine, timeout=120)
    done = first[0]
    assert done.status == events_pb2.INFERENCE_STATUS_COMPLETED
    assert done.context == exam.context
    # Abdomen exams also run the focal-lesion module, on the frames the view check routes to it.
    assert {m.name for m in done.models} == {
        "image-quality",
        "probe-health",
        "view-check",
        "focal-lesions",
    }
    assert all(len(m.sha256) == 64 for m in done.models)
    assert [q.sop_instance_uid for q in done.instance_quality] == [
        i.sop_instance_uid for i in exam.instances
    ]
    assert done.probe_health.device_serial == exam.context.device_serial
    assert done.probe_health.suspected_fault
    assert 0.0 <= done.probe_health.dead_element_fraction <= 1.0
    for key in done.derived_object_keys:
        assert key.startswith(f"derived/{study}/")
        assert service.store.stat(key) is not None

    # The same event again (a redelivery) and a re-published copy with a new event id.
    publish(service.bus, EXAM_COMPLETED, event)
    publish(service.bus, EXAM_COMPLETED, wrap(exam, source="ingest", key=study))
    marker = store_exam(service.store, instances=1, seed=99)
    publish(service.bus, EXAM_COMPLETED, wrap(marker, source="ingest", key="marker"))
    later: list = []

    def marker_done() -> bool:
        for record in sub.poll(0.5):
            message = unpack(record.cloud_event())
            later.append(message.context.study_instance_uid)
        return marker.context.study_instance_uid in later

    # The marker exam is consumed after both copies, so by then any duplicate would be out.
    wait_for(marker_done, timeout=120)
    assert study not in later
    assert _results(service, study) == 1


class _MeasuringModule:
    """A hand-written clinical module (the ExamModule port) that measures mean brightness."""

    name, version, exam_types = "test-brightness", "0.1.0", frozenset({"thyroid"})

    def run(self, frames):
        from sonobridge.inference.modules import ModuleFinding, ModuleOutput

        first = frames[0]
        finding = ModuleFinding(
            code="TEST-1",
            code_system="urn:test",
            display="mean brightness",
            value=float(np.mean([f.pixels.mean() for f in frames])),
            unit="1",
            confidence=0.4,
            low_confidence=True,
            abnormal=False,
            sop_instance_uid=first.sop_instance_uid,
            attributes={"frames": str(len(frames))},
        )
        return ModuleOutput(
            self.name, self.version, [finding], {"overlay.png": _png(first.pixels)}, {}
        )


def test_clinical_module_findings_reach_the_event_with_their_evidence(service):
    service.host.deps.modules = [_MeasuringModule()]
    try:
        exam = store_exam(service.store, exam_type="thyroid", instances=2, frames=2, seed=61)
        study = exam.context.study_instance_uid
        publish(service.bus, EXAM_COMPLETED, wrap(exam, source="ingest", key=study))
        sub = service.bus.subscribe(f"test-{study}", [INFERENCE_COMPLETED])

        def mine() -> list:
            return [
                m
                for m in (unpack(r.cloud_event()) for r in sub.poll(0.5))
                if m.context.study_instance_uid == study
            ]

        done = wait_for(mine, timeout=120)[0]
    finally:
        service.host.deps.modules = []
    (finding,) = done.findings
    assert finding.model_name == "test-brightness" and finding.model_version == "0.1.0"
    assert finding.HasField("value") and finding.low_confidence and finding.confidence == 0.4
    assert finding.attributes["frames"] == "4"
    prefix = f"derived/{study}/test-brightness/0.1.0/"
    assert set(finding.evidence_object_keys) == {f"{prefix}findings.json", f"{prefix}overlay.png"}
    assert all(service.store.stat(k) is not None for k in finding.evidence_object_keys)
    assert ("test-brightness", "0.1.0") in {(m.name, m.version) for m in done.models}
