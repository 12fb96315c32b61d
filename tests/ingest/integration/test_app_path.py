"""The app path over real HTTP: exams, tus uploads, completion, duplicates, access and audit."""

from __future__ import annotations

import hashlib
import io

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from ingest.ingest_support import (
    EXAM_COMPLETED,
    INSTANCE_STORED,
    RunningIngest,
    app_upload,
    collect_events,
    new_exam,
    synthetic_instance,
    tus_metadata,
    uids,
)

from sonobridge.api.events.v1 import events_pb2


def test_creating_an_exam_twice_gives_the_same_exam(ingest: RunningIngest) -> None:
    with ingest.client() as client:
        body = {
            "exam_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "institution_id": "township-a",
            "device_serial": "PROBE-1",
            "exam_type": "thyroid",
            "patient_ref": "p-1",
        }
        first = client.post("/v1/exams", json=body, headers={"Idempotency-Key": "k1"})
        second = client.post("/v1/exams", json=body, headers={"Idempotency-Key": "k1"})
        reused = client.post(
            "/v1/exams", json={**body, "patient_ref": "p-2"}, headers={"Idempotency-Key": "k1"}
        )
        again = client.post("/v1/exams", json=body)
        changed = client.post("/v1/exams", json={**body, "exam_type": "kidney"})
    assert first.status_code == 201
    assert second.status_code == 200 and again.status_code == 200
    assert first.json()["exam_id"] == second.json()["exam_id"] == body["exam_id"]
    assert changed.status_code == 409
    # The same key with another request is refused like in every service: 422 problem+json.
    assert reused.status_code == 422
    assert reused.headers["content-type"].startswith("application/problem+json")
    assert ingest.count("exams") == 1


def test_completing_an_exam_reports_missing_and_emits_one_exam_completed(
    ingest: RunningIngest,
) -> None:
    study = "1.2.826.0.1.3680043.8.498.1"
    first = synthetic_instance(study=study, seed=1)
    second = synthetic_instance(study=study, seed=2, frames=3)
    manifest = {
        "instances": [
            {"sop_instance_uid": uids(d)[2], "sha256": hashlib.sha256(d).hexdigest()}
            for d in (first, second)
        ],
        "scan_seconds": 42.5,
    }
    with ingest.client() as client:
        exam_id = new_exam(client)
        assert app_upload(client, exam_id, first).status_code == 204
        waiting = client.post(f"/v1/exams/{exam_id}/complete", json=manifest)
        assert waiting.status_code == 200, waiting.text
        assert waiting.json()["state"] == "awaiting_instances"
        assert waiting.json()["missing_sop_instance_uids"] == [uids(second)[2]]
        assert app_upload(client, exam_id, second).status_code == 204
        # The manifest again, and a duplicate upload, must not complete it a second time.
        again = client.post(f"/v1/exams/{exam_id}/complete", json=manifest)
        duplicate = app_upload(client, exam_id, second)
        status = client.get(f"/v1/exams/{exam_id}")
    assert again.json()["state"] == "completed"
    assert duplicate.status_code == 204 and duplicate.headers["SonoBridge-Duplicate"] == "true"
    assert status.json()["received_instance_count"] == 2
    assert status.json()["missing_sop_instance_uids"] == []
    completed = collect_events(ingest.bus, EXAM_COMPLETED, count=1, settle=1.0)
    assert len(completed) == 1
    event = completed[0]
    assert event.context.exam_id == exam_id
    assert event.context.study_instance_uid == study
    assert [i.sop_instance_uid for i in event.instances] == [uids(first)[2], uids(second)[2]]
    assert event.total_bytes == len(first) + len(second)
    assert event.scan_seconds == 42.5
    stored = collect_events(ingest.bus, INSTANCE_STORED, count=3)
    assert [e.duplicate for e in stored] == [False, False, True]
    key = f"dicom/{study}/{uids(second)[1]}/{uids(second)[2]}.dcm"
    assert ingest.object_bytes(key) == second


def test_same_uid_with_different_bytes_is_a_conflict(ingest: RunningIngest) -> None:
    original = synthetic_instance(sop="1.2.3.4.5", study="1.2.3.4", series="1.2.3.4.1", seed=1)
    altered = synthetic_instance(sop="1.2.3.4.5", study="1.2.3.4", series="1.2.3.4.1", seed=9)
    with ingest.client() as client:
        exam_id = new_exam(client)
        assert app_upload(client, exam_id, original).status_code == 204
        response = app_upload(client, exam_id, altered)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "duplicate_conflict"
    assert ingest.object_bytes("dicom/1.2.3.4/1.2.3.4.1/1.2.3.4.5.dcm") == original


def test_township_staff_see_only_their_institution_and_county_physicians_the_served_ones(
    ingest: RunningIngest,
) -> None:
    with ingest.client() as nurse:
        exam_id = new_exam(nurse)
        assert app_upload(nurse, exam_id, synthetic_instance(seed=3)).status_code == 204
    with ingest.client(user="nurse-b", institution="township-b") as other_nurse:
        hidden = other_nurse.get(f"/v1/exams/{exam_id}")
        foreign_create = other_nurse.post(
            "/v1/exams",
            json={
                "exam_id": "0f0e7a52-91a5-4b52-9d1f-0b6f1e7b2a11",
                "institution_id": "township-a",
                "device_serial": "P",
                "exam_type": "other",
                "patient_ref": "x",
            },
        )
        qido_other = other_nurse.get("/dicomweb/studies")
    with ingest.client(user="dr-b", roles=("physician",), institution="township-b") as gp:
        township_gp = gp.get(f"/v1/exams/{exam_id}")
        qido_gp = gp.get("/dicomweb/studies")
    with ingest.client(user="dr-li", roles=("physician",), institution="county-hospital") as dr:
        seen = dr.get(f"/v1/exams/{exam_id}")
        qido_dr = dr.get("/dicomweb/studies")
    with ingest.client(
        user="dr-far", roles=("expert",), institution="elsewhere", consortium="county-2"
    ) as far:
        far_away = far.get(f"/v1/exams/{exam_id}")
    anonymous = ingest.client().get(f"/v1/exams/{exam_id}", headers={"Authorization": ""})
    assert hidden.status_code == 404
    assert foreign_create.status_code == 403
    assert qido_other.status_code == 204
    assert township_gp.status_code == 404 and qido_gp.status_code == 204
    assert seen.status_code == 200 and qido_dr.status_code == 200
    assert far_away.status_code == 404
    assert anonymous.status_code == 401


def test_reads_and_writes_of_patient_data_are_audited(ingest: RunningIngest) -> None:
    from sqlalchemy import text

    with ingest.client() as client:
        exam_id = new_exam(client)
        app_upload(client, exam_id, synthetic_instance(seed=4))
        client.get(f"/v1/exams/{exam_id}")
        client.get("/dicomweb/studies")
    with ingest.engine.connect() as conn:
        actions = [
            tuple(r)
            for r in conn.execute(
                text("SELECT actor, action, outcome FROM audit_log ORDER BY id")
            ).all()
        ]
    performed = {a[1] for a in actions}
    assert {"create_exam", "create_upload", "store_instance", "read_exam", "search_studies"} <= (
        performed
    )
    assert all(actor == "nurse-1" for actor, _, _ in actions)


def _exam_with_app_metadata(
    ingest: RunningIngest, study: str, seed: int, key: str, sent: str, resent: str
) -> tuple[events_pb2.ExamCompleted, str, str]:
    """Complete an exam whose app sends `key` with one instance and again with one PACS had.

    Three instances: one the app sends with `key` = `sent`, one without, and one stored through
    STOW-RS first that the app then sends with `key` = `resent` (the app's copy both links it
    to the exam and brings the value). Return the ExamCompleted and those two instances' UIDs.
    """
    tagged = synthetic_instance(study=study, seed=seed)
    plain = synthetic_instance(study=study, seed=seed + 1)
    stowed_first = synthetic_instance(study=study, seed=seed + 2)
    manifest = {
        "instances": [
            {"sop_instance_uid": uids(d)[2], "sha256": hashlib.sha256(d).hexdigest()}
            for d in (tagged, plain, stowed_first)
        ]
    }
    pacs = DICOMwebClient(
        url=f"{ingest.base_url}/dicomweb",
        headers={"Authorization": f"Bearer {ingest.token()}"},
    )
    pacs.store_instances([pydicom.dcmread(io.BytesIO(stowed_first))])
    with ingest.client() as client:
        exam_id = new_exam(client)
        first = app_upload(client, exam_id, tagged, {key: sent})
        assert first.status_code == 204, first.text
        assert app_upload(client, exam_id, plain).status_code == 204
        again = app_upload(client, exam_id, stowed_first, {key: resent})
        assert again.status_code == 204 and again.headers["SonoBridge-Duplicate"] == "true"
        assert client.post(f"/v1/exams/{exam_id}/complete", json=manifest).status_code == 200
    (event,) = collect_events(ingest.bus, EXAM_COMPLETED, count=1, settle=1.0)
    assert len(event.instances) == 3
    return event, uids(tagged)[2], uids(stowed_first)[2]


def test_the_calibration_the_app_sends_reaches_exam_completed_with_its_instance(
    ingest: RunningIngest,
) -> None:
    event, tagged, stowed = _exam_with_app_metadata(
        ingest, "1.2.826.0.1.3680043.8.498.77", 11, "pixel_spacing_mm", "0.12\\0.15", "0.2"
    )
    spacing = {
        i.sop_instance_uid: (i.app_pixel_spacing.row_mm, i.app_pixel_spacing.column_mm)
        for i in event.instances
        if i.HasField("app_pixel_spacing")
    }
    assert spacing == {tagged: (0.12, 0.15), stowed: (0.2, 0.2)}


@pytest.mark.parametrize("value", ["0", "-0.1\\0.1", "abc", "0.1\\0.2\\0.3", "12"])
def test_an_unusable_calibration_is_refused_before_any_byte_is_sent(
    ingest: RunningIngest, value: str
) -> None:
    with ingest.client() as client:
        exam_id = new_exam(client)
        response = client.post(
            f"/v1/exams/{exam_id}/uploads",
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "100",
                "Upload-Metadata": tus_metadata({"pixel_spacing_mm": value}),
            },
        )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "bad_pixel_spacing"
    assert value in response.json()["detail"]


def test_the_gestational_age_the_app_sends_is_kept_and_reaches_exam_completed(
    ingest: RunningIngest,
) -> None:
    event, tagged, stowed = _exam_with_app_metadata(
        ingest, "1.2.826.0.1.3680043.8.498.78", 21, "gestational_age_weeks", "24.5", "31"
    )
    ages = {
        i.sop_instance_uid: i.app_gestational_age_weeks
        for i in event.instances
        if i.HasField("app_gestational_age_weeks")
    }
    assert ages == {tagged: 24.5, stowed: 31.0}


@pytest.mark.parametrize("value", ["9", "45", "twenty", "nan"])
def test_an_implausible_gestational_age_is_refused_before_any_byte_is_sent(
    ingest: RunningIngest, value: str
) -> None:
    with ingest.client() as client:
        exam_id = new_exam(client)
        response = client.post(
            f"/v1/exams/{exam_id}/uploads",
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "100",
                "Upload-Metadata": tus_metadata({"gestational_age_weeks": value}),
            },
        )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "bad_gestational_age"
    assert value in response.json()["detail"]
