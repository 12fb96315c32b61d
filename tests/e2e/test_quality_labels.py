"""An expert's quality labels on a read reach inference: they demote a gating device model and
feed the comparison of the shadow and serving versions."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pydicom
import pytest
from pydicom.uid import generate_uid

from sonobridge.inference.imaging.preprocess import InputSpec, to_tensor
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


def _send_kidney_exam(edition: Any, serial: str, patient_ref: str, instances: list[bytes]) -> Any:
    """Send a township-east kidney exam from the app, as its nurse; return what was uploaded."""
    plan = PlannedExam(
        label=f"kidney on an unvalidated handheld ({serial})",
        exam_type="kidney",
        institution="township-east",
        operator="nurse-east",
        device_serial=serial,
        patient_ref=patient_ref,
        instances=instances,
    )
    with TownshipApp(edition.urls["ingest"], edition.token(plan.operator)) as app:
        return app.send(plan)


def _claimed_read(reporting: httpx.Client, exam_id: str) -> str:
    """Wait for the exam's read on the abdominal worklist, claim it and return its id."""

    def routed() -> dict[str, Any] | None:
        page = reporting.get("/v1/reads", params={"worklist": "county-abdominal"}).json()
        mine = [r for r in page["reads"] if r["exam_id"] == exam_id]
        return mine[0] if mine else None

    read_id: str = _until(routed, "the read of the exam")["read_id"]
    assert reporting.post(f"/v1/reads/{read_id}/claim").status_code == 200
    return read_id


def test_acceptable_labels_from_the_read_demote_a_gating_device_model(edition: Any) -> None:
    instance = _dark_kidney()
    sop = str(pydicom.dcmread(io.BytesIO(instance), stop_before_pixels=True).SOPInstanceUID)
    uploaded = _send_kidney_exam(edition, "PROBE-01C", "lbl-east-001", [instance])
    admin_user = edition.consortium.with_role("admin")[0].user
    with (
        _client(edition, "reporting", EXPERT) as reporting,
        _client(edition, "inference", admin_user) as inference,
        _client(edition, "reporting", "dr-wang") as other_expert,
    ):
        # Shadow: the model asked for a rescan, yet the unvalidated device's read goes on.
        read_id = _claimed_read(reporting, uploaded.exam_id)

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


POCKET_TWO = {"manufacturer": "Acme Medical", "model_name": "Pocket Two"}
POCKET_TWO_KEY = "acme medical / pocket two"
MODELS = Path(__file__).resolve().parents[2] / (
    "services/inference/src/sonobridge/inference/models/image-quality"
)
# Generator frames and what the expert says of them; the versions disagree on several.
SHOTS = [
    (1, None),
    (2, None),
    (7, None),
    (4, Fault.LOW_GAIN),
    (5, Fault.LOST_CONTACT),
    (6, Fault.MOTION_BLUR),
    (8, Fault.DEAD_ELEMENTS),
]


def _flags(version: str, frames: list[np.ndarray]) -> list[bool]:
    """Each frame's rescan verdict by one stored version, computed here with ONNX Runtime."""
    card = json.loads((MODELS / version / "card.json").read_text())
    session = ort.InferenceSession(
        str(MODELS / version / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    spec = InputSpec.from_card(card["input"])
    threshold = card["thresholds"]["rescan_if_acceptable_below"]
    flags = []
    for frame in frames:
        (probabilities,) = session.run(["probabilities"], {spec.name: to_tensor(frame[None], spec)})
        flags.append(bool(probabilities[0][0] < threshold))
    return flags


def test_the_comparison_report_counts_each_version_against_the_experts_labels(
    edition: Any,
) -> None:
    frames = [
        generate_frame(seed, AcquisitionSpec(faults=frozenset([fault] if fault else []))).image
        for seed, fault in SHOTS
    ]
    context = SyntheticExamContext(
        device_serial="PROBE-02C",
        patient_id="LBL-0002",
        study_uid=generate_uid(),
        series_uid=generate_uid(),
        **POCKET_TWO,
    )
    instances = [ultrasound_dicom_bytes(f[None], (0.2, 0.2), context=context) for f in frames]
    sops = [
        str(pydicom.dcmread(io.BytesIO(i), stop_before_pixels=True).SOPInstanceUID)
        for i in instances
    ]
    uploaded = _send_kidney_exam(edition, "PROBE-02C", "lbl-east-002", instances)
    admin_user = edition.consortium.with_role("admin")[0].user
    with (
        _client(edition, "reporting", EXPERT) as reporting,
        _client(edition, "inference", admin_user) as inference,
        _client(edition, "inference", EXPERT) as not_admin,
    ):
        read_id = _claimed_read(reporting, uploaded.exam_id)
        # The expert labels what the generator put in each frame; the last frame stays unlabelled.
        labels = [
            {"sop_instance_uid": sop, "label": "rescan", "reason": fault.value}
            if fault
            else {"sop_instance_uid": sop, "label": "acceptable"}
            for sop, (_, fault) in zip(sops[:-1], SHOTS[:-1], strict=True)
        ]
        put = reporting.put(f"/v1/reads/{read_id}/quality-labels", json={"labels": labels})
        assert put.status_code == 200, put.text

        path = "/v1/validation/comparisons"
        refused = not_admin.get(path, params={"model": "image-quality"})
        assert refused.status_code == 403, refused.text
        bad = inference.get(path, params={"model": "kidney"})
        assert bad.status_code == 422 and bad.headers["content-type"].startswith(
            "application/problem+json"
        )

        def compared() -> dict[str, Any] | None:
            answer = inference.get(path, params={"model": "image-quality"})
            assert answer.status_code == 200, answer.text
            found = [
                d for d in answer.json()["device_models"] if d["device_model"] == POCKET_TWO_KEY
            ]
            done = found and all(v["labelled_instances"] == 6 for v in found[0]["versions"])
            return found[0] if done else None

        device = _until(compared, "every label joined to the stored verdicts")

    expert_rescan = [fault is not None for _, fault in SHOTS[:-1]]
    versions = {v["version"]: v for v in device["versions"]}
    # 1.1.0-1.4.0 are retired (superseded by 1.5.0): they run on no exam, so have no verdicts.
    assert sorted(versions) == ["1.0.0", "1.5.0"]
    served = _flags("1.0.0", frames[:-1])
    for version, got in versions.items():
        flags = _flags(version, frames[:-1])
        expected = {
            "stage": "serving" if version == "1.0.0" else "shadow",
            "labelled_instances": 6,
            "clean_labels": 3,
            "faulty_labels": 3,
            "false_rescans": sum(f and not r for f, r in zip(flags, expert_rescan, strict=True)),
            "faults_caught": sum(f and r for f, r in zip(flags, expert_rescan, strict=True)),
        }
        assert {k: got[k] for k in expected} == expected, version
    agreement = {a["version"]: a for a in device["agreement_with_serving"]}
    assert sorted(agreement) == ["1.5.0"]
    for version in agreement:
        flags = _flags(version, frames[:-1])
        assert agreement[version]["instances_judged_by_both"] == 6
        assert agreement[version]["agreeing"] == sum(
            a == b for a, b in zip(flags, served, strict=True)
        )
    # Six labels are far below the 200 frames the card asks before any promotion.
    assert len(device["recommendations"]) == 1
    assert all("would not meet the card" in r for r in device["recommendations"])
    # Counts only: no instance of the exam is named in the report.
    assert not any(sop in json.dumps(device) for sop in sops)
