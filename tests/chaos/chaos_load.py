"""Prefecture-shaped load: township apps and DIMSE devices sending exams, retrying as real ones."""

from __future__ import annotations

import hashlib
import io
import itertools
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pydicom

from sonobridge.lab.exams import Fault, ProbeState
from sonobridge.node.consortium import Consortium
from sonobridge.node.scenario import DemoIdentity, Expect, PlannedExam, synthetic_instance
from sonobridge.node.township import (
    TUS,
    UploadedExam,
    chunk_headers,
    exam_opening,
    sop_uid,
    upload_creation,
)

# DOMAIN.md: ~30,000 exams a day across ~1,000 probes, bursts 5-10x the mean.
PREFECTURE_EXAMS_PER_DAY = 30_000
BURST = (5, 10)
# A client gives up on one request after this long and retries (the pause outlasts it).
CLIENT_TIMEOUT_S = 8.0
# How long an app keeps retrying one exam before it reports it as not delivered.
EXAM_PATIENCE_S = 420.0
# Calling AE titles the demo consortium registers for DIMSE devices, by institution.
DIMSE_CALLERS = {"township-east": "EAST_US1", "township-river": "RIVER_US1"}
TOWNS = (("township-east", "01"), ("township-west", "02"), ("township-river", "03"))
BROKEN_PROBE = "PROBE-03C"


@dataclass
class LoadPlan:
    """One exam of the load with the channel its app or device sends it by."""

    plan: PlannedExam
    channel: str  # tus | stow | cstore


def prefecture_exams(count: int, seed: int = 7000) -> list[LoadPlan]:
    """`count` exams over the townships with known outcomes: routine, poor, nodule, broken probe."""
    rng = np.random.default_rng(seed)
    broken = ProbeState.with_dead_elements(rng, 128)
    kinds = ("kidney", "thyroid", "carotid", "abdomen")
    loads = []
    for n in range(count):
        kind = kinds[n % len(kinds)]
        town, probe = TOWNS[n % len(TOWNS)]
        serial = f"PROBE-{probe}{'L' if kind in ('thyroid', 'carotid') else 'C'}"
        ref = f"chaos-{seed}-{n:05d}"
        faults: frozenset[Fault] = frozenset()
        probe_state = None
        lesions: int | None = 0
        expect = Expect()
        conclusion = "No abnormality seen."
        if n % 11 == 5:
            kind, faults, expect = "kidney", frozenset({Fault.LOW_GAIN}), Expect(True, "rescan")
            serial = f"PROBE-{probe}C"
        elif n % 13 == 7:
            kind, town, serial, lesions = "thyroid", "township-river", "PROBE-03L", 1
            expect = Expect(worklist="county-thyroid", followup=True)
            conclusion = "Solid hypoechoic nodule in the right thyroid lobe; follow-up in 6 months."
        elif n % 17 in (2, 3, 4):
            # Three in a row: maintenance opens a ticket once several exams show the fault.
            kind, town, serial, faults = (
                "abdomen",
                "township-river",
                BROKEN_PROBE,
                frozenset({Fault.DEAD_ELEMENTS}),
            )
            # Dead scan lines fail the quality check too: rescan, and the probe gets a ticket.
            probe_state = broken
            expect = Expect(rescan=True, worklist="rescan", ticket_device=BROKEN_PROBE)
        label = f"{kind} #{n + 1}"
        identity = DemoIdentity.of(ref, label, 50_000 + n)
        # A still or two and, every third exam, a short cine loop.
        shapes = [1] * (1 + n % 2) + ([6] if n % 3 == 0 else [])
        study = pydicom.uid.generate_uid()
        instances = []
        for i, frames in enumerate(shapes):
            data, _ = synthetic_instance(
                kind,
                seed + n * 7 + i,
                faults=faults,
                probe_state=probe_state,
                n_lesions=lesions,
                frames=frames,
                device_serial=serial,
                identity=identity,
            )
            instances.append(_into_study(data, study))
        plan = PlannedExam(
            label=label,
            exam_type=kind,
            institution=town,
            operator=f"nurse-{town.removeprefix('township-')}",
            device_serial=serial,
            patient_ref=ref,
            instances=instances,
            expect=expect,
            expert_conclusion=conclusion,
        )
        channel = "tus"
        if n % 10 in (1, 4, 8):
            channel = "stow"
        elif n % 10 == 6 and town in DIMSE_CALLERS:
            channel = "cstore"
        loads.append(LoadPlan(plan, channel))
    return loads


def _into_study(data: bytes, study: str) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.StudyInstanceUID = study
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


class Undelivered(RuntimeError):
    """An exam the app could not hand over within its patience (a lost exam, if it happens)."""


@dataclass
class ClientTally:
    """What the clients had to do to get through: retries by cause."""

    retries: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, cause: str) -> None:
        """Count one retry."""
        with self.lock:
            self.retries[cause] += 1


class Balancer:
    """Round-robin over the ingest replicas, moving on when one fails (a Service's endpoints)."""

    def __init__(self, urls: list[str], token: str, tally: ClientTally) -> None:
        self.clients = [
            httpx.Client(
                base_url=u, headers={"Authorization": f"Bearer {token}"}, timeout=CLIENT_TIMEOUT_S
            )
            for u in urls
        ]
        self._next = itertools.cycle(range(len(urls)))
        self.tally = tally

    def close(self) -> None:
        """Close every connection pool."""
        for c in self.clients:
            c.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        ok: Callable[[httpx.Response], bool] = lambda r: r.status_code < 400,
        deadline: float,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send until `ok` holds; retry transport errors and 5xx on the next replica."""
        attempt = 0
        while True:
            client = self.clients[next(self._next)]
            try:
                response = client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                cause = type(exc).__name__
            else:
                if ok(response):
                    return response
                if response.status_code < 500 and response.status_code != 429:
                    raise Undelivered(
                        f"{method} {path}: {response.status_code} {response.text[:300]}"
                    )
                cause = f"http {response.status_code}"
            self.tally.note(cause)
            attempt += 1
            if time.monotonic() > deadline:
                raise Undelivered(f"{method} {path}: still failing ({cause}) after {attempt} tries")
            time.sleep(min(5.0, 0.3 * 2 ** min(attempt, 4)) * random.uniform(0.5, 1.0))


class FieldApp:
    """A township app (tus or STOW-RS), or a DIMSE device and its app, retrying as shipped ones."""

    def __init__(
        self,
        urls: list[str],
        dimse: list[tuple[str, int]],
        token: str,
        tally: ClientTally,
        chunk_bytes: int = 32 * 1024,
    ) -> None:
        self.http = Balancer(urls, token, tally)
        self.dimse = dimse
        self.tally = tally
        self.chunk_bytes = chunk_bytes

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def send(self, load: LoadPlan, scanned_at: datetime | None = None) -> UploadedExam:
        """Open, send every instance by the exam's channel, complete; retry until delivered.

        `scanned_at` is when the scan ended, which the app records before any upload starts.
        """
        plan = load.plan
        scanned_at = scanned_at or datetime.now(UTC)
        deadline = time.monotonic() + EXAM_PATIENCE_S
        started = time.time()
        exam_id = str(uuid.uuid4())
        self.http.request(
            "POST",
            "/v1/exams",
            deadline=deadline,
            json=exam_opening(plan, exam_id),
            headers={"Idempotency-Key": f"open-{exam_id}"},
        )
        digests = None
        if load.channel == "cstore":
            for data in plan.instances:
                self._c_store(plan.institution, data, deadline)
            # The device's images arrive re-wrapped (pynetdicom writes its own File Meta), so
            # the app confirms the SOP Instances it expects with the digests the server lists.
            listed = self.http.request("GET", f"/v1/exams/{exam_id}", deadline=deadline).json()
            digests = {i["sop_instance_uid"]: i["sha256"] for i in listed["instances"]}
        else:
            for data in plan.instances:
                if load.channel == "stow":
                    self._stow(plan.study_instance_uid, data, deadline)
                else:
                    self._tus(exam_id, data, deadline)
        state = self._complete(exam_id, plan, deadline, digests, scanned_at)
        return UploadedExam(
            plan=plan,
            exam_id=exam_id,
            study_instance_uid=plan.study_instance_uid,
            bytes_sent=sum(len(d) for d in plan.instances),
            upload_started=started,
            upload_completed=time.time(),
            state=state,
        )

    def _complete(
        self,
        exam_id: str,
        plan: PlannedExam,
        deadline: float,
        digests: dict[str, str] | None,
        scanned_at: datetime,
    ) -> str:
        sops = [sop_uid(d) for d in plan.instances]
        if digests is None:
            digests = {
                s: hashlib.sha256(d).hexdigest() for s, d in zip(sops, plan.instances, strict=True)
            }
        manifest = {
            "instances": [
                {"sop_instance_uid": s, "sha256": digests.get(s, "0" * 64)} for s in sops
            ],
            "scan_seconds": 90.0,
            # A shipped app sends the scan's own times; maintenance orders a probe's exams by them.
            "started_at": (scanned_at - timedelta(seconds=90)).isoformat(),
            "completed_at": scanned_at.isoformat(),
        }
        answer = self.http.request(
            "POST", f"/v1/exams/{exam_id}/complete", json=manifest, deadline=deadline
        )
        return str(answer.json()["state"])

    def _tus(self, exam_id: str, data: bytes, deadline: float) -> None:
        sop = sop_uid(data)
        meta = {"filename": f"{sop}.dcm", "sop_instance_uid": sop}
        created = self.http.request(
            "POST",
            f"/v1/exams/{exam_id}/uploads",
            deadline=deadline,
            headers=upload_creation(len(data), meta),
        )
        location = urlsplit(created.headers["Location"]).path
        offset = 0
        while offset < len(data):
            chunk = data[offset : offset + self.chunk_bytes]
            answer = self.http.request(
                "PATCH",
                location,
                deadline=deadline,
                # A 409 (offset moved, or a dead request still holds the lock) means: ask HEAD.
                ok=lambda r: r.status_code < 400 or r.status_code == 409,
                content=chunk,
                headers=chunk_headers(offset, chunk),
            )
            if answer.status_code == 409:
                self.tally.note("tus 409 " + str(answer.json().get("reason", "")))
                if time.monotonic() > deadline:
                    raise Undelivered(f"upload {location}: 409 until patience ran out")
                # As tuspy, wait and ask HEAD; the server's Retry-After says how long is worth it.
                time.sleep(min(5.0, float(answer.headers.get("Retry-After", 1.0))))
                head = self.http.request(
                    "HEAD", location, deadline=deadline, headers={"Tus-Resumable": TUS}
                )
                offset = int(head.headers["Upload-Offset"])
                continue
            offset = int(answer.headers["Upload-Offset"])

    def _stow(self, study: str, data: bytes, deadline: float) -> None:
        boundary = uuid.uuid4().hex
        body = (
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        # The same instance again after a failure: STOW-RS answers a duplicate as stored.
        self.http.request(
            "POST",
            f"/dicomweb/studies/{study}",
            deadline=deadline,
            content=body,
            headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                "Accept": "application/dicom+json",
            },
        )

    def _c_store(self, institution: str, data: bytes, deadline: float) -> None:
        from pynetdicom import AE

        ds = pydicom.dcmread(io.BytesIO(data))
        ae = AE(ae_title=DIMSE_CALLERS[institution])
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = CLIENT_TIMEOUT_S
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
        attempt = 0
        while True:
            host, port = self.dimse[attempt % len(self.dimse)]
            assoc = ae.associate(host, port, ae_title="SONOBRIDGE")
            status = None
            if assoc.is_established:
                try:
                    reply = assoc.send_c_store(ds)
                    status = int(reply.Status) if "Status" in reply else None
                finally:
                    assoc.release()
            # 0x0000 stored; 0x0111 duplicate (an earlier try got through before the break).
            if status in (0x0000, 0x0111):
                return
            self.tally.note(f"c-store {'no association' if status is None else hex(status)}")
            attempt += 1
            if time.monotonic() > deadline:
                raise Undelivered(f"C-STORE of {ds.SOPInstanceUID}: status {status}")
            time.sleep(min(5.0, 0.3 * 2 ** min(attempt, 4)))


@dataclass
class LoadResult:
    """What the apps handed over and what they could not."""

    delivered: list[UploadedExam]
    undelivered: list[tuple[LoadPlan, str]]
    seconds: float


class LoadGenerator:
    """Send `loads` from `apps` parallel township apps at `rate` exams per second."""

    def __init__(
        self,
        loads: list[LoadPlan],
        consortium: Consortium,
        issuer: Any,
        urls: list[str],
        dimse: list[tuple[str, int]],
        *,
        rate: float,
        apps: int = 6,
        on_delivered: Callable[[UploadedExam], None] = lambda _e: None,
    ) -> None:
        self.loads = loads
        self.consortium, self.issuer = consortium, issuer
        self.urls, self.dimse = urls, dimse
        self.rate, self.apps = rate, apps
        self.on_delivered = on_delivered
        self.tally = ClientTally()
        self.result = LoadResult([], [], 0.0)
        self._queue = list(enumerate(loads))
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._started = self._started_wall = 0.0
        # Exams an app is sending right now (a fault should find some).
        self.in_flight = 0

    def start(self) -> None:
        """Start the app threads."""
        self._started = time.monotonic()
        self._started_wall = time.time()
        for n in range(self.apps):
            t = threading.Thread(target=self._app, name=f"app-{n}", daemon=True)
            t.start()
            self._threads.append(t)

    def _take(self) -> tuple[int, LoadPlan] | None:
        with self._lock:
            return self._queue.pop(0) if self._queue else None

    def _app(self) -> None:
        apps: dict[str, FieldApp] = {}
        try:
            while (item := self._take()) is not None:
                n, load = item
                # The exam's slot in the paced schedule: township apps do not wait on each other.
                delay = self._started + n / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                operator = load.plan.operator
                if operator not in apps:
                    token = self.consortium.token(self.issuer, operator)
                    apps[operator] = FieldApp(self.urls, self.dimse, token, self.tally)
                with self._lock:
                    self.in_flight += 1
                try:
                    # Each exam was scanned at its slot, in plan order, whenever its upload lands.
                    slot = min(self._started_wall + n / self.rate, time.time())
                    uploaded = apps[operator].send(load, datetime.fromtimestamp(slot, UTC))
                except Undelivered as exc:
                    with self._lock:
                        self.result.undelivered.append((load, str(exc)))
                    continue
                finally:
                    with self._lock:
                        self.in_flight -= 1
                with self._lock:
                    self.result.delivered.append(uploaded)
                self.on_delivered(uploaded)
        finally:
            for app in apps.values():
                app.close()

    def join(self) -> LoadResult:
        """Wait for every app to finish; return what was delivered."""
        for t in self._threads:
            t.join()
        self.result.seconds = time.monotonic() - self._started
        return self.result
