"""A PATCH cut mid-body keeps what it received: bounded commits and release to a newcomer."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ingest.ingest_support import (
    RunningIngest,
    new_exam,
    running_ingest,
    synthetic_instance,
    tus_create,
    tus_patch,
    uids,
)
from sqlalchemy import text

from sonobridge.common.auth import LocalIssuer
from sonobridge.common.db import create_db_engine
from sonobridge.common.objects.minio import MinioObjectStore

PIECE = 64 * 1024


@pytest.fixture(params=["single", pytest.param("cluster", marks=pytest.mark.infra)])
def ingest(
    request: pytest.FixtureRequest, tmp_path: Path, issuer: LocalIssuer
) -> Iterator[RunningIngest]:
    """Ingest committing a streaming PATCH every 64 KiB (time alone never triggers it here)."""
    commits: dict[str, Any] = {"upload_commit_bytes": PIECE, "upload_commit_seconds": 3600}
    if request.param == "single":
        with running_ingest(tmp_path, issuer, **commits) as running:
            yield running
        return
    minio = request.getfixturevalue("minio_endpoint")
    store = MinioObjectStore(
        minio.endpoint, minio.access_key, minio.secret_key, request.getfixturevalue("unique_bucket")
    )
    store.ensure_bucket()
    engine = create_db_engine(request.getfixturevalue("pg_database"))
    try:
        with running_ingest(tmp_path, issuer, store=store, engine=engine, **commits) as running:
            yield running
    finally:
        engine.dispose()


def _open_patch(
    ingest: RunningIngest, path: str, offset: int, body: bytes, sent: int
) -> socket.socket:
    """Start a PATCH announcing all of `body`, send `sent` bytes and leave the socket open.

    This is a client that vanished without the server noticing (a killed app on a lossy link).
    """
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {ingest.token()}\r\nTus-Resumable: 1.0.0\r\n"
        f"Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", ingest.host.http_port))
    sock.sendall(head + body[:sent])
    return sock


def _stored_offset(ingest: RunningIngest, path: str) -> int:
    session_id = path.rsplit("/", 1)[1]
    with ingest.engine.connect() as conn:
        query = text("SELECT upload_offset FROM upload_sessions WHERE session_id = :s")
        return int(conn.execute(query, {"s": session_id}).scalar_one())


def _head(ingest: RunningIngest, path: str) -> int:
    with ingest.client() as client:
        response = client.head(path, headers={"Tus-Resumable": "1.0.0"})
    assert response.status_code == 200
    return int(response.headers["Upload-Offset"])


def _instance() -> bytes:
    data = synthetic_instance(frames=8, rows=120, columns=160, seed=20)
    assert len(data) > 6 * PIECE
    return data


def test_streaming_patch_commits_bounded_pieces_before_its_body_ends(
    ingest: RunningIngest,
) -> None:
    data = _instance()
    sent = 5 * PIECE + 1000
    with ingest.client() as client:
        path = tus_create(client, new_exam(client), len(data))
    sock = _open_patch(ingest, path, 0, data, sent)
    try:
        deadline = time.monotonic() + 10
        while _stored_offset(ingest, path) < 4 * PIECE and time.monotonic() < deadline:
            time.sleep(0.05)
        # Nobody asked for the offset: pieces of at least 64 KiB (whole socket reads) were
        # committed while the body streamed, so at most one piece is still uncommitted.
        assert sent - 2 * PIECE <= _stored_offset(ingest, path) <= sent
    finally:
        sock.close()


def test_head_after_a_vanished_client_sees_what_it_sent_and_resume_stores_once(
    ingest: RunningIngest,
) -> None:
    data = _instance()
    study, series, sop = uids(data)
    sent = 3 * PIECE + 12_345
    with ingest.client() as client:
        path = tus_create(client, new_exam(client), len(data))
    stale = _open_patch(ingest, path, 0, data, sent)
    try:
        time.sleep(0.5)  # the bytes are in the server's hands; the client is "gone"
        offset = _head(ingest, path)
        # The holder was asked to let go: it committed everything it had read, not just the
        # last 64 KiB boundary, and certainly not the old offset 0.
        assert offset == sent
        stale.settimeout(10)
        answer = stale.recv(65536)
        assert answer.startswith(b"HTTP/1.1 409"), answer[:200]
        assert b"upload_released" in answer
        with ingest.client() as client:
            response = tus_patch(client, path, offset, data[offset:])
        assert response.status_code == 204, response.text
    finally:
        stale.close()
    assert ingest.object_bytes(f"dicom/{study}/{series}/{sop}.dcm") == data
    assert ingest.stored_keys("uploads/") == []
    assert ingest.count("instances") == 1


def test_takeover_while_the_old_client_keeps_sending_leaves_no_duplicate_bytes(
    ingest: RunningIngest,
) -> None:
    data = _instance()
    study, series, sop = uids(data)
    sent = 2 * PIECE + 777
    with ingest.client() as client:
        path = tus_create(client, new_exam(client), len(data))
    old = _open_patch(ingest, path, 0, data, sent)
    try:
        time.sleep(0.3)
        offset = _head(ingest, path)
        assert offset >= 2 * PIECE
        with ingest.client() as client:
            response = tus_patch(client, path, offset, data[offset:])
        assert response.status_code == 204, response.text
        # The old client wakes up and sends the rest: none of it may land anywhere.
        # The server may already have answered and closed: OSError is fine then.
        with contextlib.suppress(OSError):
            old.sendall(data[sent:])
    finally:
        old.close()
    time.sleep(0.3)
    assert ingest.object_bytes(f"dicom/{study}/{series}/{sop}.dcm") == data
    assert ingest.stored_keys("uploads/") == []
    assert _stored_offset(ingest, path) == len(data)
