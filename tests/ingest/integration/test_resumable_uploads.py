"""Uploads cut at random byte offsets over real HTTP resume to byte-identical objects."""

from __future__ import annotations

import io
import random
import socket
import time

import pytest
from ingest.ingest_support import RunningIngest, new_exam, synthetic_instance, tus_create, uids
from tusclient import client as tus


def _cut_patch(ingest: RunningIngest, path: str, offset: int, body: bytes, cut: int) -> None:
    """Send a PATCH announcing all of `body`, then drop the connection after `cut` bytes."""
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {ingest.token()}\r\nTus-Resumable: 1.0.0\r\n"
        f"Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", ingest.host.http_port)) as sock:
        sock.sendall(head + body[:cut])


def _offset(client, path: str) -> int:
    response = client.head(path, headers={"Tus-Resumable": "1.0.0"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    return int(response.headers["Upload-Offset"])


@pytest.mark.parametrize("seed", range(12))
def test_upload_cut_at_random_offsets_resumes_to_identical_object(
    ingest: RunningIngest, seed: int
) -> None:
    rng = random.Random(seed)
    data = synthetic_instance(frames=rng.randint(2, 6), rows=120, columns=160, seed=seed)
    study, series, sop = uids(data)
    with ingest.client() as client:
        exam_id = new_exam(client)
        path = tus_create(client, exam_id, len(data))
        for _ in range(rng.randint(1, 4)):
            offset = _offset(client, path)
            _cut_patch(ingest, path, offset, data[offset:], rng.randint(0, len(data) - offset - 1))
            # The server notices the drop asynchronously; wait until the offset settles.
            time.sleep(0.3)
        while (offset := _offset(client, path)) < len(data):
            response = client.patch(
                path,
                content=data[offset:],
                headers={
                    "Tus-Resumable": "1.0.0",
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            if response.status_code == 409:  # the dropped request committed in between
                continue
            assert response.status_code == 204, response.text
            break
    assert ingest.object_bytes(f"dicom/{study}/{series}/{sop}.dcm") == data
    assert ingest.stored_keys("uploads/") == []
    resumes = ingest.host.app.state.deps.metrics.upload_resumes._value.get()
    assert resumes >= 1


def test_tus_client_library_resumes_an_interrupted_upload_with_checksums(
    ingest: RunningIngest,
) -> None:
    data = synthetic_instance(frames=8, rows=100, columns=120, seed=77)
    study, series, sop = uids(data)
    with ingest.client() as client:
        exam_id = new_exam(client)
    headers = {"Authorization": f"Bearer {ingest.token()}"}
    endpoint = f"{ingest.base_url}/v1/exams/{exam_id}/uploads"
    first = tus.TusClient(endpoint, headers=headers).uploader(
        file_stream=io.BytesIO(data),
        chunk_size=40_000,
        upload_checksum=True,
        metadata={"filename": "loop.dcm"},
    )
    first.upload_chunk()
    first.upload_chunk()
    # A new process after the phone lost signal: same upload URL, offset asked from the server.
    second = tus.TusClient(endpoint, headers=headers).uploader(
        file_stream=io.BytesIO(data), chunk_size=40_000, upload_checksum=True, url=first.url
    )
    assert second.offset == 80_000
    second.upload()
    assert ingest.object_bytes(f"dicom/{study}/{series}/{sop}.dcm") == data


def test_chunk_with_wrong_checksum_is_refused_and_offset_kept(ingest: RunningIngest) -> None:
    data = synthetic_instance(seed=5)
    with ingest.client() as client:
        path = tus_create(client, new_exam(client), len(data))
        response = client.patch(
            path,
            content=data[:1000],
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
                "Upload-Checksum": "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            },
        )
        assert response.status_code == 460
        assert _offset(client, path) == 0
        terminated = client.delete(path, headers={"Tus-Resumable": "1.0.0"})
        gone = client.head(path, headers={"Tus-Resumable": "1.0.0"})
    assert terminated.status_code == 204
    assert gone.status_code == 404


def test_expired_upload_answers_gone(tmp_path, issuer) -> None:
    from ingest.ingest_support import running_ingest

    with running_ingest(tmp_path, issuer, upload_expiry_seconds=1) as ingest:
        data = synthetic_instance(seed=6)
        with ingest.client() as client:
            path = tus_create(client, new_exam(client), len(data))
            time.sleep(1.5)
            response = client.head(path, headers={"Tus-Resumable": "1.0.0"})
    assert response.status_code == 410
