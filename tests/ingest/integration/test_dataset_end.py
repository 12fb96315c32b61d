"""An instance ends where its dataset ends: STOW and tus refuse trailing bytes; tus says so."""

from __future__ import annotations

import struct
import uuid

import httpx
from ingest.ingest_support import (
    RunningIngest,
    new_exam,
    pydicom_file,
    synthetic_instance,
    tus_create,
    tus_patch,
    uids,
)

TUS = {"Tus-Resumable": "1.0.0"}


def _padding(length: int) -> bytes:
    """A (FFFC,FFFC) Data Set Trailing Padding element, explicit VR little endian."""
    return struct.pack("<HH", 0xFFFC, 0xFFFC) + b"OB\x00\x00" + struct.pack("<L", length)


def _stow(client: httpx.Client, data: bytes) -> httpx.Response:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return client.post(
        "/dicomweb/studies",
        content=body,
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
        },
    )


def test_zeros_after_the_pixel_data_are_refused_and_tus_says_the_upload_was_rejected(
    ingest: RunningIngest,
) -> None:
    data = synthetic_instance(seed=21, frames=2) + bytes(8 * 1024 * 1024)
    half = len(data) // 2
    with ingest.client() as client:
        path = tus_create(client, new_exam(client), len(data))
        assert tus_patch(client, path, 0, data[:half]).status_code == 204
        final = tus_patch(client, path, half, data[half:])
        head = client.head(path, headers=TUS)
        again = tus_patch(client, path, half, data[half:])
    assert final.status_code == 422, final.text
    assert final.headers["content-type"] == "application/problem+json"
    assert final.json()["reason"] == "trailing_data"
    assert "8388608 bytes after the dataset" in final.json()["detail"]
    assert head.status_code == 410
    assert head.headers["SonoBridge-Upload-State"] == "rejected"
    assert "Upload-Offset" not in head.headers
    assert again.status_code == 410
    assert again.json()["reason"] == "upload_rejected"
    assert ingest.stored_keys("dicom/") == []
    assert ingest.stored_keys("uploads/") == []


def test_junk_after_the_dataset_is_refused_by_stow(ingest: RunningIngest) -> None:
    native = synthetic_instance(seed=22)
    encapsulated = pydicom_file("examples_ybr_color.dcm")
    with ingest.client() as client:
        answers = [
            _stow(client, native + bytes(1024)),
            _stow(client, encapsulated + b"JUNK" * 100),
            # Padding, then bytes that break tag order: not a dataset either.
            _stow(client, native + _padding(4) + bytes(4) + b"\x08\x00\x18\x00UI\x02\x001\x00"),
        ]
    assert [a.status_code for a in answers] == [409, 409, 409], [a.text for a in answers]
    assert ingest.stored_keys("dicom/") == []


def test_trailing_padding_element_is_part_of_the_dataset_and_kept(ingest: RunningIngest) -> None:
    data = synthetic_instance(seed=23) + _padding(64) + bytes(64)
    study, series, sop = uids(data)
    with ingest.client() as client:
        path = tus_create(client, new_exam(client), len(data))
        answer = tus_patch(client, path, 0, data)
        head = client.head(path, headers=TUS)
    assert answer.status_code == 204, answer.text
    assert head.headers["SonoBridge-Upload-State"] == "stored"
    assert ingest.object_bytes(f"dicom/{study}/{series}/{sop}.dcm") == data
