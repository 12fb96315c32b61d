"""tus 1.0 conformance as the stock tuspy client sees it, against both editions.

Creation, an upload in several checksummed chunks resumed by URL fingerprint after the network
cut two of them mid-body, a chunk refused for its checksum, termination, and a 412 naming
Tus-Version for a version the server does not speak.
"""

from __future__ import annotations

import base64
import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ingest.conformance.conformance_support import Server
from ingest.ingest_support import new_exam, synthetic_instance, uids
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError
from tusclient.storage.filestorage import FileStorage
from tusclient.uploader import Uploader

CHUNK = 48_000
CUT = 17_321  # body bytes of a cut chunk that get through before the network drops
V1 = {"Tus-Resumable": "1.0.0"}
FADE_SECONDS = 3.0  # generous: a loaded 2-core CI box must have read the bytes by then


class CuttingRelay:
    """A loopback TCP relay to the server that, once armed, drops one request mid-body."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.cut: int | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            cut, self.cut = self.cut, None  # the next connection takes the armed cut
            threading.Thread(target=self._relay, args=(conn, cut), daemon=True).start()

    def _relay(self, client: socket.socket, cut: int | None) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream))
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        if cut is None:
            _pump(client, upstream)
            back.join(30)
            return
        received = b""
        while (end := received.find(b"\r\n\r\n")) < 0 or len(received) < end + 4 + cut:
            data = client.recv(65536)
            if not data:
                break
            received += data
        upstream.sendall(received[: end + 4 + cut])
        # The signal fades before it drops: uvicorn forgets body bytes it has not yet handed to
        # the app once it sees the connection close, so let the server read what arrived.
        time.sleep(FADE_SECONDS)
        # Both ends see the connection drop mid-body, as when a phone loses signal.
        for sock in (upstream, client):
            with contextlib.suppress(OSError):  # the client may have given up already
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the other direction closed first


@pytest.fixture
def relay(server: Server) -> Iterator[CuttingRelay]:
    port = int(server.base_url.rsplit(":", 1)[1])
    cutting = CuttingRelay(port)
    yield cutting
    cutting.close()


def _uploader(
    server: Server, endpoint: str, data: bytes | Path, *, checksum: bool = True, **options: object
) -> Uploader:
    """tuspy's uploader (SHA-1 chunk checksums unless told), of bytes or of a file."""
    headers = {"Authorization": f"Bearer {server.token()}"}
    source: dict[str, object] = (
        {"file_path": str(data)} if isinstance(data, Path) else {"file_stream": io.BytesIO(data)}
    )
    return tus.TusClient(endpoint, headers=headers).uploader(
        chunk_size=CHUNK, upload_checksum=checksum, **source, **options
    )


def _offset(client: httpx.Client, url: str, *, moved_from: int | None = None) -> int:
    """The server's offset; with `moved_from`, once it has moved on from that value."""
    deadline = time.monotonic() + 15
    while True:
        answer = client.head(url, headers=V1)
        assert answer.status_code == 200, answer.status_code
        offset = int(answer.headers["Upload-Offset"])
        # The server notices a dropped request asynchronously: wait until its part is kept.
        if moved_from is None or offset != moved_from or time.monotonic() > deadline:
            return offset
        time.sleep(0.1)


def test_tuspy_uploads_in_chunks_and_resumes_after_cut_chunks(
    server: Server, relay: CuttingRelay, tmp_path: Path
) -> None:
    data = synthetic_instance(frames=6, rows=100, columns=120, seed=41)
    assert len(data) > 4 * CHUNK
    with server.http() as client:
        exam_id = new_exam(client)
    # Through the relay, as the app on a phone; tuspy remembers the upload URL in a file.
    endpoint = f"http://127.0.0.1:{relay.port}/v1/exams/{exam_id}/uploads"
    urls = FileStorage(str(tmp_path / "tus-urls.json"))
    options = {"store_url": True, "url_storage": urls, "metadata": {"filename": "loop.dcm"}}
    loop = tmp_path / "loop.dcm"
    loop.write_bytes(data)
    first = _uploader(server, endpoint, loop, **options)
    first.upload_chunk()
    first.upload_chunk()
    assert first.offset == 2 * CHUNK
    relay.cut = CUT
    with pytest.raises(TusCommunicationError):
        first.upload_chunk()
    with server.http() as client:
        # A cut chunk that announced a checksum cannot be verified: none of it is kept.
        assert _offset(client, first.url) == 2 * CHUNK

    # The app restarts (a build without checksums): tuspy finds the URL by the file's
    # fingerprint and asks the offset; the network drops this chunk too.
    second = _uploader(server, endpoint, loop, checksum=False, **options)
    assert (second.url, second.offset) == (first.url, 2 * CHUNK)
    relay.cut = CUT
    with pytest.raises(TusCommunicationError):
        second.upload_chunk()
    with server.http() as client:
        kept = _offset(client, first.url, moved_from=2 * CHUNK)
    # What arrived before the cut is kept (all of it, unless the server had not read it all).
    assert 2 * CHUNK < kept <= 2 * CHUNK + CUT, kept

    third = _uploader(server, endpoint, loop, **options)
    assert (third.url, third.offset) == (first.url, kept)
    third.upload()
    headers = third.request.response_headers
    assert headers["sonobridge-sop-instance-uid"] == uids(data)[2]
    assert headers["sonobridge-duplicate"] == "false"
    assert server.retrieve_file(*uids(data)) == data
    assert server.stored_keys("uploads/") == []
    patches = 4 + -(-(len(data) - kept) // CHUNK)
    print(f"{server.edition}: {len(data)} B in {patches} PATCHes, two cut, resumed from {kept}")


def test_a_chunk_failing_its_checksum_is_refused_and_tuspy_finishes_the_upload(
    server: Server,
) -> None:
    data = synthetic_instance(frames=2, rows=100, columns=120, seed=42)
    with server.http() as client:
        endpoint = f"{server.base_url}/v1/exams/{new_exam(client)}/uploads"
        discovery = client.options(endpoint)
        assert discovery.status_code == 204
        extensions = discovery.headers["Tus-Extension"].split(",")
        assert {"creation", "checksum", "termination"} <= set(extensions)
        uploader = _uploader(server, endpoint, data)
        assert uploader.checksum_algorithm_name in discovery.headers["Tus-Checksum-Algorithm"]
        uploader.upload_chunk()
        chunk = data[CHUNK : 2 * CHUNK]
        wrong = base64.b64encode(bytes(20)).decode()  # a SHA-1 digest's length, not its value
        refused = client.patch(
            uploader.url,
            content=chunk,
            headers={
                **V1,
                "Upload-Offset": str(CHUNK),
                "Content-Type": "application/offset+octet-stream",
                "Upload-Checksum": f"sha1 {wrong}",
            },
        )
        assert refused.status_code == 460, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert _offset(client, uploader.url) == CHUNK
    uploader.upload()
    assert server.retrieve_file(*uids(data)) == data


def test_terminated_upload_is_gone_for_tuspy_and_a_new_one_stores(server: Server) -> None:
    data = synthetic_instance(frames=2, rows=100, columns=120, seed=43)
    with server.http() as client:
        endpoint = f"{server.base_url}/v1/exams/{new_exam(client)}/uploads"
        uploader = _uploader(server, endpoint, data)
        uploader.upload_chunk()
        # tuspy has no termination call: the app's DELETE, as the extension defines it.
        terminated = client.delete(uploader.url, headers=V1)
        assert terminated.status_code == 204
        assert terminated.headers["Tus-Resumable"] == "1.0.0"
        assert client.head(uploader.url, headers=V1).status_code == 404
    with pytest.raises(TusCommunicationError) as gone:
        _uploader(server, endpoint, data, url=uploader.url)
    assert gone.value.status_code == 404
    assert server.stored_keys("uploads/") == [], "a terminated upload's parts are freed"
    fresh = _uploader(server, endpoint, data)
    fresh.upload()
    assert fresh.url != uploader.url
    assert server.retrieve_file(*uids(data)) == data


def test_an_unsupported_tus_version_gets_412_naming_tus_version(server: Server) -> None:
    data = synthetic_instance(frames=2, rows=100, columns=120, seed=44)
    with server.http() as client:
        endpoint = f"{server.base_url}/v1/exams/{new_exam(client)}/uploads"
        headers = {"Authorization": f"Bearer {server.token()}", "Tus-Resumable": "0.2.2"}
        old = tus.TusClient(endpoint, headers=headers).uploader(file_stream=io.BytesIO(data))
        with pytest.raises(TusCommunicationError) as refused:
            old.upload_chunk()
        assert refused.value.status_code == 412
        upload = _uploader(server, endpoint, data)
        upload.upload_chunk()
        patch = {"Upload-Offset": str(CHUNK), "Content-Type": "application/offset+octet-stream"}
        answers = {
            "POST": client.post(endpoint, headers={"Tus-Resumable": "0.2.2", "Upload-Length": "9"}),
            "HEAD": client.head(upload.url, headers={"Tus-Resumable": "0.2.2"}),
            "PATCH": client.patch(
                upload.url, content=b"x", headers={"Tus-Resumable": "2.0.0", **patch}
            ),
            "DELETE": client.delete(upload.url, headers={"Tus-Resumable": "0.2.2"}),
        }
        for method, answer in answers.items():
            assert answer.status_code == 412, (method, answer.status_code)
            assert answer.headers["Tus-Version"] == "1.0.0", method
        # None of them touched the upload, which the 1.0.0 client then finishes.
        assert _offset(client, upload.url) == CHUNK
    upload.upload()
    assert server.retrieve_file(*uids(data)) == data
