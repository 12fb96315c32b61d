"""A rural 4G link in front of ingest (Toxiproxy) and a tus upload measured across it.

The test and `bench/links/bench_weak_link.py` share this: the test asserts correctness on a small
exam, the bench prints the same figures for the issue's 50 MB exam.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import requests
from tusclient import client as tus
from tusclient.exceptions import TusCommunicationError

from sonobridge.node.scenario import PlannedExam, routine_exams
from sonobridge.node.township import TownshipApp

TUS = "1.0.0"
MB = 1024 * 1024
# A private OB element carries the padding, so the instance stays a valid ultrasound image.
_PAD_TAG = 0x00091010
_PAD_CREATOR_TAG = 0x00090010


@dataclass(frozen=True)
class LinkShape:
    """What the link does to traffic: rate and delay each way, and how often it is cut."""

    rate_kbytes_s: int = 625  # 5 Mbit/s
    latency_ms: int = 50  # each way, so 100 ms RTT
    jitter_ms: int = 10
    cut_every_s: float = 30.0
    max_cuts: int = 1_000
    # How long the proxy stays down at a cut: a phone losing its cell for a moment.
    cut_down_s: float = 0.2
    # How late the server learns of a cut (0: at once, as when the phone's RST gets through).
    server_notices_after_s: float = 0.0


@dataclass
class Toxiproxy:
    """The few calls of the Toxiproxy HTTP API the weak-link runs need."""

    api: str  # host:port

    def _url(self, path: str) -> str:
        return f"http://{self.api}{path}"

    def create_proxy(self, name: str, upstream: str) -> str:
        """Create a proxy on a free loopback port in front of `upstream`; return its host:port."""
        response = httpx.post(
            self._url("/proxies"),
            json={"name": name, "listen": "127.0.0.1:0", "upstream": upstream},
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["listen"])

    def delete_proxy(self, name: str) -> None:
        """Remove a proxy and close its connections."""
        httpx.delete(self._url(f"/proxies/{name}"), timeout=10)

    def add_toxic(self, proxy: str, toxic: str, stream: str, **attributes: int) -> None:
        """Add one toxic (bandwidth, latency, ...) to one direction of a proxy."""
        response = httpx.post(
            self._url(f"/proxies/{proxy}/toxics"),
            json={
                "name": f"{toxic}-{stream}",
                "type": toxic,
                "stream": stream,
                "toxicity": 1.0,
                "attributes": attributes,
            },
            timeout=10,
        )
        response.raise_for_status()

    def shape(self, proxy: str, link: LinkShape) -> None:
        """Apply the link's rate and delay to both directions."""
        for stream in ("upstream", "downstream"):
            self.add_toxic(proxy, "bandwidth", stream, rate=link.rate_kbytes_s)
            self.add_toxic(proxy, "latency", stream, latency=link.latency_ms, jitter=link.jitter_ms)

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        """Disabling a proxy closes every connection through it: the cut a phone sees."""
        response = httpx.post(self._url(f"/proxies/{proxy}"), json={"enabled": enabled}, timeout=10)
        response.raise_for_status()


class ByteMeter:
    """A loopback TCP relay in front of the server that counts the bytes reaching it.

    Toxiproxy's own counters lose the bytes of connections it closes at a cut, so the count is
    taken behind the link, where what arrived is what the radio carried. With `notice_after_s`
    the server's side of a cut connection stays open that long: a phone that vanished off a
    lossy cell, which the server notices only when TCP gives up, not at once.
    """

    def __init__(self, upstream: str, notice_after_s: float = 0.0) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self.notice_after_s = notice_after_s
        self.upstream_bytes = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="byte-meter", daemon=True)
        self.address = ""

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: bool
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if count:
                    self.upstream_bytes += len(chunk)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # a cut: the other pump sees it too and both ends get closed below
        finally:
            if count and self.notice_after_s:
                await asyncio.sleep(self.notice_after_s)
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pump(reader, up_writer, count=True), self._pump(up_reader, writer, count=False)
        )

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", 0))
        host, port = server.sockets[0].getsockname()[:2]
        self.address = f"{host}:{port}"
        self._ready.set()
        self._loop.run_forever()
        server.close()
        # Relays still lingering on a cut are cancelled and awaited, so none is left dangling.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    def __enter__(self) -> ByteMeter:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@contextmanager
def shaped_proxy(
    toxiproxy: Toxiproxy, upstream: str, link: LinkShape
) -> Iterator[tuple[str, str, ByteMeter]]:
    """A shaped proxy, metered behind, in front of `upstream`; yields name, address, meter."""
    name = f"weak-link-{uuid.uuid4().hex[:8]}"
    with ByteMeter(upstream, link.server_notices_after_s) as meter:
        address = toxiproxy.create_proxy(name, meter.address)
        try:
            toxiproxy.shape(name, link)
            yield name, address, meter
        finally:
            toxiproxy.delete_proxy(name)


class Cutter:
    """Cuts the link every `cut_every_s` until stopped or `max_cuts` is reached."""

    def __init__(self, toxiproxy: Toxiproxy, proxy: str, link: LinkShape) -> None:
        self.toxiproxy, self.proxy, self.link = toxiproxy, proxy, link
        self.cuts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="link-cutter", daemon=True)

    def _run(self) -> None:
        while self.cuts < self.link.max_cuts and not self._stop.wait(self.link.cut_every_s):
            self.toxiproxy.set_enabled(self.proxy, False)
            self.cuts += 1
            time.sleep(self.link.cut_down_s)
            self.toxiproxy.set_enabled(self.proxy, True)

    def __enter__(self) -> Cutter:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def padded_exam(size: int, seed: int = 7000) -> PlannedExam:
    """A routine exam whose one instance is padded with random bytes to about `size` bytes."""
    plan = routine_exams(1, seed=seed)[0]
    ds = pydicom.dcmread(io.BytesIO(plan.instances[0]))
    missing = max(0, size - len(plan.instances[0]))
    # Random bytes: a cine compresses no better on the radio link, so neither may the padding.
    padding = np.random.default_rng(seed).integers(0, 256, missing, dtype=np.uint8).tobytes()
    ds.add_new(_PAD_CREATOR_TAG, "LO", "SONOBRIDGE WEAK LINK")
    ds.add_new(_PAD_TAG, "OB", padding + b"\0" * (len(padding) % 2))
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    plan.instances = [buffer.getvalue()]
    return plan


@dataclass
class LinkRun:
    """What one upload across the link cost: time, bytes that reached the server, cuts."""

    size: int
    seconds: float
    upstream_bytes: int
    cuts: int = 0
    restarts: int = 0

    @property
    def goodput_kbytes_s(self) -> float:
        """File bytes per second of wall clock, in KB/s."""
        return self.size / self.seconds / 1000


def curl_baseline(
    meter: ByteMeter,
    address: str,
    ingest_url: str,
    token: str,
    plan: PlannedExam,
) -> LinkRun:
    """One uninterrupted `curl` PATCH of the whole instance through the proxy."""
    data = plan.instances[0]
    with TownshipApp(ingest_url, token) as app:
        exam_id = app.open_exam(plan)
        created = app.client.post(
            f"/v1/exams/{exam_id}/uploads",
            headers={"Tus-Resumable": TUS, "Upload-Length": str(len(data))},
        )
        created.raise_for_status()
        location = created.headers["Location"]
    with tempfile.NamedTemporaryFile(suffix=".dcm") as handle:
        Path(handle.name).write_bytes(data)
        before = meter.upstream_bytes
        started = time.monotonic()
        proc = subprocess.run(
            [
                "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PATCH",
                "-H", f"Authorization: Bearer {token}", "-H", f"Tus-Resumable: {TUS}",
                "-H", "Upload-Offset: 0", "-H", "Content-Type: application/offset+octet-stream",
                "-H", "Expect:", "--data-binary", f"@{handle.name}",
                f"http://{address}{location}",
            ],
            capture_output=True, text=True, check=False, timeout=3600,
        )  # fmt: skip
        seconds = time.monotonic() - started
    if proc.stdout != "204":
        raise AssertionError(f"curl baseline answered {proc.stdout!r}: {proc.stderr}")
    return LinkRun(len(data), seconds, meter.upstream_bytes - before)


def tus_upload(
    toxiproxy: Toxiproxy,
    proxy: str,
    meter: ByteMeter,
    address: str,
    upload_path: str,
    token: str,
    data: bytes,
    link: LinkShape,
    *,
    deadline_s: float,
) -> LinkRun:
    """Upload with the stock tuspy client while the link is cut; resume at once from HEAD.

    tuspy retries a failed PATCH itself (HEAD, then PATCH from the server's offset). When its
    retries run out the app is restarted: a new uploader on the same URL, as a phone app does.
    """
    url = f"http://{address}{upload_path}"
    headers = {"Authorization": f"Bearer {token}", "Tus-Resumable": TUS}
    before = meter.upstream_bytes
    restarts = 0
    started = time.monotonic()
    with Cutter(toxiproxy, proxy, link) as cutter:
        while True:
            if time.monotonic() - started > deadline_s:
                raise AssertionError(f"upload not finished after {deadline_s:.0f}s")
            try:
                uploader = tus.TusClient(url, headers=headers).uploader(
                    file_stream=io.BytesIO(data), url=url, retries=20, retry_delay=0
                )
                uploader.upload()
                break
            except (TusCommunicationError, requests.RequestException):
                # The phone app is killed and started again: it asks HEAD where to go on.
                restarts += 1
                time.sleep(0.1)
        seconds = time.monotonic() - started
        cuts = cutter.cuts
    return LinkRun(len(data), seconds, meter.upstream_bytes - before, cuts, restarts)


@dataclass
class WeakLinkResult:
    """Both runs on the same link and what the server stored."""

    link: LinkShape
    baseline: LinkRun
    resumable: LinkRun
    exam: dict[str, Any]
    sha256: str

    @property
    def goodput_ratio(self) -> float:
        """tus goodput under cuts over curl's without: the issue's target is >= 0.85."""
        return self.baseline.seconds / self.resumable.seconds

    @property
    def resent_fraction(self) -> float:
        """Bytes that crossed the link twice, as a share of the file (target <= 10%)."""
        overhead = self.baseline.upstream_bytes - self.baseline.size  # headers of one request
        sent = self.resumable.upstream_bytes - overhead
        return max(0, sent - self.resumable.size) / self.resumable.size

    def lines(self) -> list[str]:
        """The figures, printed not asserted: speed targets belong in benchmarks."""
        b, r = self.baseline, self.resumable
        return [
            f"weak link: {r.size / MB:.1f} MB exam, server notices a cut after "
            f"{self.link.server_notices_after_s:g}s",
            f"  curl, no cuts:  {b.seconds:6.1f}s  {b.goodput_kbytes_s:6.1f} KB/s  "
            f"{b.upstream_bytes} bytes up",
            f"  tuspy, {r.cuts} cuts: {r.seconds:6.1f}s  {r.goodput_kbytes_s:6.1f} KB/s  "
            f"{r.upstream_bytes} bytes up, {r.restarts} failed attempts restarted",
            f"  goodput ratio vs curl: {self.goodput_ratio:.2f}x (issue target >= 0.85x)",
            f"  bytes sent twice: {100 * self.resent_fraction:.1f}% (issue target <= 10%)",
        ]


def run_weak_link(
    toxiproxy: Toxiproxy,
    ingest_url: str,
    token: str,
    size: int,
    link: LinkShape,
    *,
    deadline_s: float = 3600,
    printer: Callable[[str], None] = print,
) -> WeakLinkResult:
    """Measure curl then tuspy on one shaped proxy in front of ingest; complete the exam."""
    upstream = ingest_url.removeprefix("http://")
    plan = padded_exam(size)
    data = plan.instances[0]
    with shaped_proxy(toxiproxy, upstream, link) as (proxy, address, meter):
        # Its own exam (another study) of the same size, so the measured one is stored once.
        reference = padded_exam(size, seed=7001)
        baseline = curl_baseline(meter, address, ingest_url, token, reference)
        printer(f"weak link: curl baseline {baseline.seconds:.1f}s for {baseline.size} bytes")
        with TownshipApp(ingest_url, token) as app:
            exam_id = app.open_exam(plan)
            created = app.client.post(
                f"/v1/exams/{exam_id}/uploads",
                headers={"Tus-Resumable": TUS, "Upload-Length": str(len(data))},
            )
            created.raise_for_status()
            resumable = tus_upload(
                toxiproxy,
                proxy,
                meter,
                address,
                created.headers["Location"],
                token,
                data,
                link,
                deadline_s=deadline_s,
            )
            first = app.complete(exam_id, plan, scan_seconds=60.0)
            # A second completion (the app retrying after a lost answer) must change nothing.
            again = app.complete(exam_id, plan, scan_seconds=60.0)
            exam = app.client.get(f"/v1/exams/{exam_id}").json()
            exam["completion_states"] = [first["state"], again["state"]]
    result = WeakLinkResult(link, baseline, resumable, exam, hashlib.sha256(data).hexdigest())
    for line in result.lines():
        printer(line)
    return result
