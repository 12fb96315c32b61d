"""A corpus of malformed instances gets 4xx (or a DICOM failure status), never 5xx or debris."""

from __future__ import annotations

import io
import struct
import uuid

import pydicom
from ingest.ingest_support import (
    RunningIngest,
    new_exam,
    pydicom_file,
    synthetic_instance,
    tus_create,
    tus_patch,
)
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import UltrasoundImageStorage


def _rewrite(data: bytes, **changes: object) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    for keyword, value in changes.items():
        if keyword.startswith("meta_"):
            setattr(ds.file_meta, keyword[5:], value)
        elif value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


def _huge_pixel_length(data: bytes) -> bytes:
    index = data.rfind(b"\xe0\x7f\x10\x00OB\x00\x00")
    return data[: index + 8] + struct.pack("<L", 0x7FFFFFF0) + data[index + 12 :]


def _unsupported_syntax(data: bytes) -> bytes:
    # Same length as Explicit VR Little Endian, so the file meta stays well formed.
    return data.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.99", 1)


def corpus() -> dict[str, bytes]:
    """Malformed inputs with what makes each one bad."""
    good = synthetic_instance(seed=11, frames=2)
    jpeg = pydicom_file("examples_ybr_color.dcm")
    return {
        "garbage": bytes(range(256)) * 40,
        "tiny": b"DICM",
        "no_preamble": good[132:],
        "truncated_header": good[:400],
        "truncated_pixels": good[: len(good) - 5000],
        "truncated_fragments": jpeg[: len(jpeg) - 3000],
        "huge_declared_length": _huge_pixel_length(good),
        "malformed_sop_uid": _rewrite(
            good, SOPInstanceUID="1.2.abc.4", meta_MediaStorageSOPInstanceUID="1.2.abc.4"
        ),
        "missing_study_uid": _rewrite(good, StudyInstanceUID=None),
        "media_uid_contradiction": _rewrite(good, meta_MediaStorageSOPInstanceUID="1.2.3.99"),
        "unsupported_syntax": _unsupported_syntax(good),
        "pixels_do_not_match_rows": _rewrite(good, Rows=500),
        "frames_do_not_match": _rewrite(good, NumberOfFrames=7),
        "no_pixel_data": _rewrite(good, PixelData=None),
    }


def _assert_clean(ingest: RunningIngest) -> None:
    assert ingest.stored_keys("dicom/") == []
    assert ingest.stored_keys("uploads/") == []
    assert ingest.count("instances") == 0


def test_malformed_uploads_by_the_app_get_4xx_and_leave_nothing(ingest: RunningIngest) -> None:
    with ingest.client() as client:
        exam_id = new_exam(client, study_instance_uid="1.2.826.0.1.3680043.8.498.5")
        answers = {}
        for name, data in {
            **corpus(),
            "contradicts_exam": synthetic_instance(seed=3, study="1.2.3.4.5.6"),
        }.items():
            response = tus_patch(client, tus_create(client, exam_id, len(data)), 0, data)
            answers[name] = (response.status_code, response.json().get("reason"))
        too_big = client.post(
            f"/v1/exams/{exam_id}/uploads",
            headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(3 * 1024**3)},
        )
        empty = client.post(
            f"/v1/exams/{exam_id}/uploads",
            headers={"Tus-Resumable": "1.0.0", "Upload-Length": "0"},
        )
        no_tus = client.post(f"/v1/exams/{exam_id}/uploads", headers={"Upload-Length": "5"})
    assert all(400 <= status < 500 for status, _ in answers.values()), answers
    assert answers["huge_declared_length"][1] == "truncated"
    assert answers["unsupported_syntax"][1] == "unsupported_transfer_syntax"
    assert answers["pixels_do_not_match_rows"][1] == "pixel_mismatch"
    assert answers["contradicts_exam"][1] == "uid_mismatch"
    assert too_big.status_code == 413 and empty.status_code == 422 and no_tus.status_code == 412
    _assert_clean(ingest)


def test_malformed_stow_requests_get_4xx_and_leave_nothing(ingest: RunningIngest) -> None:
    boundary = uuid.uuid4().hex
    headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}
    with ingest.client() as client:
        for name, data in corpus().items():
            body = (
                f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                + data
                + f"\r\n--{boundary}--\r\n".encode()
            )
            response = client.post("/dicomweb/studies", content=body, headers=headers)
            assert response.status_code == 409, (name, response.text)
        broken = client.post("/dicomweb/studies", content=b"--x\r\nno end", headers=headers)
        wrong_type = client.post(
            "/dicomweb/studies", content=b"{}", headers={"Content-Type": "application/json"}
        )
    assert broken.status_code == 400
    assert wrong_type.status_code == 415
    _assert_clean(ingest)


def test_malformed_c_store_gets_a_failure_status_and_leaves_nothing(
    ingest: RunningIngest,
) -> None:
    good = pydicom.dcmread(io.BytesIO(synthetic_instance(seed=4)))
    bad_uid = good.copy()
    bad_uid.SOPInstanceUID = "1.2.3.0004"
    bad_pixels = good.copy()
    bad_pixels.Rows = 999
    ingest.register_caller("PROBE1", "township-a")
    ae = AE(ae_title="PROBE1")
    ae.add_requested_context(UltrasoundImageStorage, good.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", ingest.dimse_port, ae_title="SONOBRIDGE")
    assert assoc.is_established
    try:
        statuses = [assoc.send_c_store(ds).Status for ds in (bad_uid, bad_pixels)]
    finally:
        assoc.release()
    assert statuses == [0xC000, 0xC000]
    _assert_clean(ingest)


def test_requests_without_a_valid_token_are_refused(ingest: RunningIngest) -> None:
    with ingest.client() as client:
        for method, path in (
            ("GET", "/dicomweb/studies"),
            ("POST", "/dicomweb/studies"),
            ("POST", "/v1/exams"),
            ("HEAD", "/v1/uploads/x"),
        ):
            response = client.request(method, path, headers={"Authorization": "Bearer junk"})
            assert response.status_code == 401, (method, path)
    assert isinstance(Dataset(), Dataset)
