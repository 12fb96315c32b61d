"""Run-time model administration: load, pin and unload versions while the service serves."""

from __future__ import annotations

import io
import json
from pathlib import Path

from inference.inference_support import start_service

from sonobridge.api.inference.v1 import inference_pb2
from sonobridge.common.auth import LocalIssuer
from sonobridge.common.objects.ports import ObjectStore, read_all
from sonobridge.inference.entrypoints.grpc_server import array_to_tensor
from sonobridge.inference.imaging.preprocess import to_tensor
from sonobridge.lab.synthetic import AcquisitionSpec, generate_frame


def _publish_copy(store: ObjectStore, name: str, source: str, target: str) -> None:
    """Store an existing version again under a new number, as a retrained model would be."""
    card = json.loads(read_all(store, f"models/{name}/{source}/card.json"))
    card["version"] = target
    onnx = read_all(store, f"models/{name}/{source}/model.onnx")
    store.put(f"models/{name}/{target}/model.onnx", io.BytesIO(onnx))
    store.put(f"models/{name}/{target}/card.json", io.BytesIO(json.dumps(card).encode()))


def test_admin_loads_pins_and_unloads_versions_at_run_time(
    tmp_path: Path, issuer: LocalIssuer
) -> None:
    service = start_service(tmp_path, issuer)
    try:
        admin = {"Authorization": f"Bearer {issuer.issue('it-1', ['admin'], 'county')}"}
        _publish_copy(service.store, "probe-health", "1.0.0", "1.1.0")
        base = "/v1/models/probe-health"

        assert service.http.get(f"{base}/1.1.0", headers=admin).json()["loaded"] is False
        loaded = service.http.post(f"{base}/1.1.0/load", headers=admin)
        assert loaded.status_code == 200, loaded.text
        assert (loaded.json()["loaded"], loaded.json()["pinned"]) == (True, False)

        # The pinned, required version cannot be pulled from under live traffic.
        refused = service.http.post(f"{base}/1.0.0/unload", headers=admin)
        assert refused.status_code == 409
        assert "pinned and required" in refused.json()["detail"]

        pinned = service.http.post(f"{base}/1.1.0/pin", headers=admin)
        assert pinned.json()["pinned"] is True
        model = service.host.app.state.deps.models.get("probe-health")
        x = to_tensor(generate_frame(3, AcquisitionSpec()).image[None], model.input_spec)
        answer = service.grpc.Infer(
            inference_pb2.InferRequest(
                model_name="probe-health",
                tensors=inference_pb2.TensorInputs(tensors=[array_to_tensor("image", x)]),
            ),
            metadata=service.metadata(),
        )
        assert answer.model_version == "1.1.0"

        unloaded = service.http.post(f"{base}/1.0.0/unload", headers=admin)
        assert unloaded.status_code == 200, unloaded.text
        assert unloaded.json()["loaded"] is False
        assert service.http.get("/readyz").status_code == 200
    finally:
        service.close()


def test_model_administration_needs_the_admin_role_and_a_stored_model(
    tmp_path: Path, issuer: LocalIssuer
) -> None:
    service = start_service(tmp_path, issuer)
    try:
        operator = service.headers()
        admin = {"Authorization": f"Bearer {issuer.issue('it-1', ['admin'], 'county')}"}
        forbidden = service.http.post("/v1/models/probe-health/1.0.0/load", headers=operator)
        assert forbidden.status_code == 403
        missing = service.http.post("/v1/models/probe-health/9.9.9/load", headers=admin)
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
    finally:
        service.close()
