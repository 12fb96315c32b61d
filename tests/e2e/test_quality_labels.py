"""An expert's quality labels on a read reach inference and demote a gating device model."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest

from sonobridge.lab.synthetic import AcquisitionSpec, Fault, generate_frame
from sonobridge.lab.synthetic.dicom import SyntheticExamContext, ultrasound_dicom_bytes
from sonobridge.node.scenario import PlannedExam
from sonobridge.node.township import TownshipApp

pytestmark = pytest.mark.e2e
ACME = {"manufacturer": "Acme Medical", "model_name": "Pocket One"}
ACME_KEY = "acme medical / pocket one"
EXPERT = "dr-chen"  # the abdominal expert reads kidney exams


def _client(edition: Any, service: str, user: str) -> httpx.Client:
    return httpx.Client(
        base_url=edition.urls[service],
        headers={"Authorization": f"Bearer {edition.token(user)}"},
        timeout=30,
    )


def _dark_kidney() -> bytes:
    frame = generate_frame(91, AcquisitionSpec(faults=frozenset({Fault.LOW_GAIN}))).image
    context = SyntheticExamContext(device_serial="PROBE-01C", patient_id="LBL-0001", **ACME)
    return ultrasound_dicom_bytes(frame[np.newaxis], (0.2, 0.2), context=context)


def _until(check: Any, what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_acceptable_labels_from_the_read_demote_a_gating_device_model(edition: Any) -> None:
    instance = _dark_kidney()
    sop = str(pydicom.dcmread(io.BytesIO(instance), stop_before_pixels=True).SOPInstanceUID)
    plan = PlannedExam(
        label="kidney on an unvalidated handheld, dark",
        exam_type="kidney",
        institution="township-east",
        operator="nurse-east",
        device_serial="PROBE-01C",
        patient_ref="lbl-east-001",
        instances=[instance],
    )
    with TownshipApp(edition.urls["ingest"], edition.token(plan.operator)) as app:
        uploaded = app.send(plan)
    admin_user = edition.consortium.with_role("admin")[0].user
    with (
        _client(edition, "reporting", EXPERT) as reporting,
        _client(edition, "inference", admin_user) as inference,
        _client(edition, "reporting", "dr-wang") as other_expert,
    ):

        def routed() -> dict[str, Any] | None:
            page = reporting.get("/v1/reads", params={"worklist": "county-abdominal"}).json()
            mine = [r for r in page["reads"] if r["exam_id"] == uploaded.exam_id]
            return mine[0] if mine else None

        # Shadow: the model asked for a rescan, yet the unvalidated device's read goes on.
        read = _until(routed, "the read of the exam")
        read_id = read["read_id"]
        assert reporting.post(f"/v1/reads/{read_id}/claim").status_code == 200

        report = {
            "device_model": ACME,
            "model": {"name": "image-quality", "version": "1.0.0"},
            "n_frames": 400,
            "false_rescan_rate": 0.1,
            "fault_catch_rate": 0.85,
        }
        promoted = inference.post("/v1/validation/promotions", json={"report": report})
        assert promoted.status_code == 201, promoted.text
        # 49 earlier labels of rescanned frames the experts found fine; the card waits for 50.
        earlier = [
            {
                "model": "image-quality",
                "device_model": ACME,
                "sop_instance_uid": f"9.9.{i}",
                "label": "acceptable",
                "model_flagged": True,
            }
            for i in range(49)
        ]
        seeded = inference.post("/v1/validation/quality-labels", json={"labels": earlier})
        assert seeded.status_code == 200 and seeded.json()["demotions"] == []

        path = f"/v1/reads/{read_id}/quality-labels"
        stranger = reporting.put(
            path, json={"labels": [{"sop_instance_uid": "1.2", "label": "acceptable"}]}
        )
        assert stranger.status_code == 422, stranger.text
        assert stranger.headers["content-type"].startswith("application/problem+json")
        not_mine = other_expert.put(
            path, json={"labels": [{"sop_instance_uid": sop, "label": "acceptable"}]}
        )
        assert not_mine.status_code in (403, 404)
        assert not_mine.headers["content-type"].startswith("application/problem+json")

        labelled = reporting.put(
            path, json={"labels": [{"sop_instance_uid": sop, "label": "acceptable"}]}
        )
        assert labelled.status_code == 200, labelled.text
        assert [(lb["sop_instance_uid"], lb["label"]) for lb in labelled.json()["labels"]] == [
            (sop, "acceptable")
        ]

        def state() -> str | None:
            listed = inference.get("/v1/validation/device-models").json()["device_models"]
            found = [d["state"] for d in listed if d["device_model"] == ACME_KEY]
            return found[0] if found and found[0] == "advisory" else None

        assert _until(state, "the demotion of the device model") == "advisory"
