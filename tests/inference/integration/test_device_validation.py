"""Validation per device model through the single-node service: REST, SQLite, audit, metrics."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from sqlalchemy import select

from sonobridge.inference.adapters import orm
from sonobridge.lab.synthetic import AcquisitionSpec, Fault, generate_frame

BUTTERFLY = {"manufacturer": "Butterfly Network", "model_name": "Butterfly iQ"}


def _png(seed: int, *faults: Fault) -> bytes:
    frame: np.ndarray = generate_frame(seed, AcquisitionSpec(faults=frozenset(faults))).image
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def _report(n_frames: int) -> dict[str, object]:
    return {
        "device_model": {"manufacturer": "BUTTERFLY  network", "model_name": "butterfly iq"},
        "model": {"name": "image-quality", "version": "1.0.0"},
        "n_frames": n_frames,
        "false_rescan_rate": 0.1,
        "fault_catch_rate": 0.85,
    }


def test_a_device_model_is_shadow_until_promoted_and_demoted_by_expert_labels(service):
    admin = {"Authorization": f"Bearer {service.issuer.issue('it-1', ['admin'], 'county')}"}
    expert = {"Authorization": f"Bearer {service.issuer.issue('dr-1', ['expert'], 'county')}"}
    nurse = {**service.headers(), "Content-Type": "image/png"}
    dark = _png(91, Fault.LOW_GAIN)

    def check() -> dict[str, object]:
        answer = service.http.post(
            "/v1/quality-checks", params=BUTTERFLY, content=dark, headers=nurse
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    shadow = check()
    assert shadow["validation"] == "shadow" and shadow["acceptable"] is True
    assert shadow["model_acceptable"] is False and shadow["reasons"] == []
    assert shadow["advice"] == "quality not assessed for this device"

    short = service.http.post(
        "/v1/validation/promotions", json={"report": _report(20)}, headers=admin
    )
    assert short.status_code == 409 and "at least 200" in short.json()["detail"]
    assert short.headers["content-type"].startswith("application/problem+json")
    forbidden = service.http.post(
        "/v1/validation/promotions", json={"report": _report(400)}, headers=service.headers()
    )
    assert forbidden.status_code == 403

    promoted = service.http.post(
        "/v1/validation/promotions",
        json={"report": _report(400), "reason": "county trial"},
        headers=admin,
    )
    assert promoted.status_code == 201, promoted.text
    assert promoted.json()["from_state"] == "shadow" and promoted.json()["to_state"] == "gating"
    gating = check()
    assert gating["validation"] == "gating" and gating["acceptable"] is False

    # The card demotes past 25% false rescans over at least 50 clean expert labels.
    labels = [
        {
            "model": "image-quality",
            "device_model": BUTTERFLY,
            "sop_instance_uid": f"1.2.3.{i}",
            "label": "acceptable",
            "model_flagged": i % 2 == 0,
        }
        for i in range(60)
    ]
    answer = service.http.post(
        "/v1/validation/quality-labels", json={"labels": labels}, headers=expert
    )
    assert answer.status_code == 200, answer.text
    demotions = answer.json()["demotions"]
    assert [(d["from_state"], d["to_state"]) for d in demotions] == [("gating", "advisory")]
    advisory = check()
    assert advisory["validation"] == "advisory" and advisory["acceptable"] is True
    assert advisory["reasons"] == ["low_gain"]

    listed = service.http.get("/v1/validation/device-models", headers=admin).json()
    assert [(d["device_model"], d["state"]) for d in listed["device_models"]] == [
        ("butterfly network / butterfly iq", "advisory")
    ]
    with service.engine.connect() as connection:
        trail = connection.execute(
            select(orm.audit_log.c.actor, orm.audit_log.c.action, orm.audit_log.c.detail).order_by(
                orm.audit_log.c.id
            )
        ).all()
    assert [(a, act) for a, act, _ in trail] == [
        ("it-1", "validation:gating"),
        ("dr-1", "validation:advisory"),
    ]
    assert "shadow -> gating: county trial" in trail[0][2]
    metrics = service.http.get("/metrics").text
    assert (
        'sonobridge_inference_validation_state{device_model="butterfly network / butterfly iq",'
        'model="image-quality",state="advisory"} 1.0'
    ) in metrics
