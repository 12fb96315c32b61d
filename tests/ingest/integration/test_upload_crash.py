"""SIGKILL `sonobridge serve` while final tus chunks are assembled and stored; restart; finish.

Each kill lands while several uploads' final PATCHes are in flight, each at its own seeded
random point of assembly and storing. After the restart no upload may claim completion without
its stored instance, the stock tus client (tuspy) finishes every one byte-identical, the exam
completes, and no part, spool or temp file is left. Long form: SONOBRIDGE_CRASH_KILLS,
SONOBRIDGE_CRASH_UPLOADS (per kill) and SONOBRIDGE_CRASH_FRAMES (size) raise the defaults.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from ingest.ingest_support import (
    RunningIngest,
    new_exam,
    synthetic_instance,
    tus_create,
    tus_patch,
    uids,
)
from pydicom.uid import generate_uid
from tusclient import client as tus

from sonobridge.node.consortium import demo_consortium
from sonobridge.node.issuer import issuer_for

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("SONOBRIDGE_CRASH_KILLS", "2"))
UPLOADS_PER_KILL = int(os.environ.get("SONOBRIDGE_CRASH_UPLOADS", "8"))
# 240x320 RGB frames of 230,400 bytes: 10 frames make a 2.3 MB instance.
FRAMES = int(os.environ.get("SONOBRIDGE_CRASH_FRAMES", "10"))
SEED = int(os.environ.get("SONOBRIDGE_CRASH_SEED", "1306"))
# Final PATCHes the kills must cut before the test counts (each at its own random point).
MIN_CUT = int(os.environ.get("SONOBRIDGE_CRASH_MIN_CUT", "10"))
MIDDLE_CHUNK = 1024 * 1024
# Small, so that the final PATCH's time goes to assembly and storing, not to its body.
FINAL_CHUNK = 64 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
URL = re.compile(r"^\s+ingest\s+REST (http://\S+)/v1")


class Serve:
    """`sonobridge serve --service ingest` as a child process on the given data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sonobridge.node",
                "--data-dir",
                str(data_dir),
                "serve",
                "--ephemeral-ports",
                "--service",
                "ingest",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.url = ""
        self.output: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                if match := URL.match(line):
                    self.url = match.group(1)
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(120):
            self.kill()
            pytest.fail("sonobridge serve did not start:\n" + "".join(self.output[-40:]))

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)


class Upload:
    """One instance sent by tus: everything but its final chunk first, the final chunk raced."""

    def __init__(self, study: str, seed: int) -> None:
        self.data = synthetic_instance(study=study, frames=FRAMES, rows=240, columns=320, seed=seed)
        self.study, self.series, self.sop = uids(self.data)
        self.path = ""
        self.final_answer: int | None = None

    @property
    def final_offset(self) -> int:
        """Where the final chunk starts."""
        return len(self.data) - FINAL_CHUNK

    def send_all_but_final(self, client: httpx.Client, exam_id: str) -> None:
        """Create the upload and PATCH every byte before the final chunk."""
        created = client.post(
            f"/v1/exams/{exam_id}/uploads", headers={**TUS, "Upload-Length": str(len(self.data))}
        )
        assert created.status_code == 201, created.text
        self.path = created.headers["Location"]
        for start in range(0, self.final_offset, MIDDLE_CHUNK):
            end = min(start + MIDDLE_CHUNK, self.final_offset)
            answer = self.patch(client, start, end)
            assert answer.status_code == 204, answer.text

    def patch(self, client: httpx.Client, start: int, end: int) -> httpx.Response:
        """PATCH data[start:end] at `start`."""
        return client.patch(
            self.path,
            content=self.data[start:end],
            headers={
                **TUS,
                "Upload-Offset": str(start),
                "Content-Type": "application/offset+octet-stream",
            },
        )

    def send_final(self, client: httpx.Client) -> None:
        """PATCH the final chunk; remember the status if an answer came before the kill."""
        try:
            answer = self.patch(client, self.final_offset, len(self.data))
            self.final_answer = answer.status_code
        except httpx.HTTPError:
            self.final_answer = None


def _race(batch: list[Upload], url: str, auth: dict[str, str], starts: list[float]) -> None:
    """Send each upload's final PATCH at its own monotonic start time, all at once; wait."""

    def race(upload: Upload, start: float) -> None:
        time.sleep(max(0.0, start - time.monotonic()))
        with httpx.Client(base_url=url, headers=auth, timeout=120) as client:
            upload.send_final(client)

    threads = [threading.Thread(target=race, args=pair) for pair in zip(batch, starts, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def _object(data_dir: Path, upload: Upload) -> Path:
    return (
        data_dir / "objects" / "data" / "dicom" / upload.study / upload.series / f"{upload.sop}.dcm"
    )


def _leftovers(data_dir: Path) -> list[str]:
    """Files of unfinished requests: upload parts, spool files, object-store temp files."""
    found = []
    for folder in (
        data_dir / "objects" / "data" / "uploads",
        data_dir / "ingest-spool",
        data_dir / "objects" / ".tmp",
    ):
        if folder.exists():
            found += [str(p.relative_to(data_dir)) for p in folder.rglob("*") if p.is_file()]
    return found


def test_uploads_killed_during_assembly_finish_byte_identical_after_restart(
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    data_dir = tmp_path / "node"
    data_dir.mkdir()
    consortium = demo_consortium()
    (data_dir / "consortium.json").write_text(consortium.to_json())
    token = consortium.token(issuer_for(data_dir), "nurse-east")
    auth = {"Authorization": f"Bearer {token}"}
    exam_id = str(uuid.uuid4())
    study = generate_uid()
    uploads: list[Upload] = []
    interrupted = 0
    outcomes: Counter[str] = Counter()

    server = Serve(data_dir)
    try:
        with httpx.Client(base_url=server.url, headers=auth, timeout=120) as client:
            created = client.post(
                "/v1/exams",
                json={
                    "exam_id": exam_id,
                    "institution_id": "township-east",
                    "device_serial": "PROBE-01L",
                    "exam_type": "thyroid",
                    "patient_ref": "crash-test",
                    "study_instance_uid": study,
                },
            )
            assert created.status_code == 201, created.text
            # The first final PATCH also loads the DICOM reader: send one before timing.
            warm = Upload(study, seed=rng.randrange(10**6))
            warm.send_all_but_final(client, exam_id)
            warm.send_final(client)
            assert warm.final_answer == 204
            uploads.append(warm)
            # Calibrate: how long a batch of final PATCHes (assembly and store) takes when they
            # run at once, as they do below; concurrent requests share commits and the CPU.
            probes = [Upload(study, seed=rng.randrange(10**6)) for _ in range(UPLOADS_PER_KILL)]
            for probe in probes:
                probe.send_all_but_final(client, exam_id)
        began = time.monotonic()
        _race(probes, server.url, auth, [began] * len(probes))
        took = time.monotonic() - began
        assert [p.final_answer for p in probes] == [204] * len(probes)
        uploads += probes
        kills = 0
        # Timing differs between machines: a few extra kills make up for ones that came late.
        while kills < KILLS or (interrupted < MIN_CUT and kills < KILLS + 4):
            kills += 1
            batch = [Upload(study, seed=rng.randrange(10**6)) for _ in range(UPLOADS_PER_KILL)]
            with httpx.Client(base_url=server.url, headers=auth, timeout=120) as client:
                for upload in batch:
                    upload.send_all_but_final(client, exam_id)
            # Each final PATCH starts so that the kill finds it a random share into its work.
            lead = [rng.uniform(0.0, 1.0) * took for _ in batch]
            kill_at = time.monotonic() + max(lead) + 0.05
            racing = threading.Thread(
                target=_race, args=(batch, server.url, auth, [kill_at - a for a in lead])
            )
            racing.start()
            time.sleep(max(0.0, kill_at - time.monotonic()))
            server.kill()
            racing.join(120)
            interrupted += sum(u.final_answer is None for u in batch)
            outcomes["answered 204 before the kill"] += sum(u.final_answer == 204 for u in batch)
            uploads += batch
            server = Serve(data_dir)
            outcomes.update(_check_no_false_completion(server.url, auth, data_dir, batch))

        for upload in uploads:
            resumed = tus.TusClient(f"{server.url}/v1/exams/{exam_id}/uploads", headers=auth)
            uploader = resumed.uploader(
                file_stream=io.BytesIO(upload.data), url=f"{server.url}{upload.path}"
            )
            uploader.upload()
            stored = _object(data_dir, upload).read_bytes()
            assert hashlib.sha256(stored).digest() == hashlib.sha256(upload.data).digest()

        manifest = [
            {"sop_instance_uid": u.sop, "sha256": hashlib.sha256(u.data).hexdigest()}
            for u in uploads
        ]
        with httpx.Client(base_url=server.url, headers=auth, timeout=60) as client:
            done = client.post(f"/v1/exams/{exam_id}/complete", json={"instances": manifest})
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "completed"
        assert done.json()["received_instance_count"] == len(uploads)
    finally:
        server.stop()
    assert _leftovers(data_dir) == []
    print(
        f"\n{kills} kills x {UPLOADS_PER_KILL} uploads of {len(uploads[0].data)} bytes: "
        f"{interrupted} final PATCHes cut, a batch of final PATCHes at once {took:.2f}s; "
        f"after restart: "
        f"{dict(outcomes)}"
    )
    assert interrupted >= MIN_CUT, f"only {interrupted} kills landed during a final PATCH"


def _check_no_false_completion(
    url: str, auth: dict[str, str], data_dir: Path, batch: list[Upload]
) -> Counter[str]:
    """After a restart, HEAD says complete only for uploads whose instance is stored."""
    seen: Counter[str] = Counter()
    with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
        for upload in batch:
            head = client.head(upload.path, headers=TUS)
            assert head.status_code == 200, head.headers
            offset = int(head.headers["Upload-Offset"])
            if offset == len(upload.data):
                assert head.headers["SonoBridge-Upload-State"] == "stored"
                assert _object(data_dir, upload).read_bytes() == upload.data
                if upload.final_answer is None:
                    seen["cut after storing: HEAD says stored"] += 1
            else:
                # Never acknowledged, so the final chunk is asked for again.
                assert head.headers["SonoBridge-Upload-State"] == "open"
                assert offset == upload.final_offset
                assert upload.final_answer is None
                seen["cut before storing: HEAD at the final chunk"] += 1
    return seen


def _die_holding_the_lock(ingest: RunningIngest, path: str, at: int) -> None:
    """Play a request on another replica that locked the upload 20 min ago, wrote a part, died."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    session_id = path.rsplit("/", 1)[1]
    taken = datetime.now(UTC) - timedelta(minutes=20)
    with ingest.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE upload_sessions SET status='appending', parts=parts+1, "
                "expires_at=:expires WHERE session_id=:id"
            ),
            {"expires": taken + ingest.host.app.state.deps.upload_expiry, "id": session_id},
        )
    part = f"uploads/{session_id}/{at:020d}-{at + 10:020d}.g2.part"
    ingest.store.put(part, io.BytesIO(b"0123456789"), length=10)


def test_a_stale_lock_is_taken_over_and_a_dead_requests_part_swept(ingest: RunningIngest) -> None:
    from sonobridge.ingest.handlers.recovery import recover_uploads

    study = generate_uid()
    first, second = (synthetic_instance(study=study, seed=31 + n, frames=3) for n in range(2))
    with ingest.client() as client:
        exam_id = new_exam(client)
        paths = [tus_create(client, exam_id, len(d)) for d in (first, second)]
        cuts = [len(d) // 2 for d in (first, second)]
        for path, data, cut in zip(paths, (first, second), cuts, strict=True):
            assert tus_patch(client, path, 0, data[:cut]).status_code == 204
            _die_holding_the_lock(ingest, path, cut)
        # The next PATCH takes the stale lock over; the dead part never becomes upload bytes.
        head = client.head(paths[0], headers=TUS)
        assert (head.status_code, int(head.headers["Upload-Offset"])) == (200, cuts[0])
        assert tus_patch(client, paths[0], cuts[0], first[cuts[0] :]).status_code == 204
        # The sweep reopens the other one and deletes what its dead request wrote.
        swept = recover_uploads(ingest.host.app.state.deps, sole_owner=False)
        assert (swept.reopened, swept.parts_removed) == (1, 1)
        assert tus_patch(client, paths[1], cuts[1], second[cuts[1] :]).status_code == 204
    for data in (first, second):
        study, series, sop = uids(data)
        assert ingest.object_bytes(f"dicom/{study}/{series}/{sop}.dcm") == data
    assert ingest.stored_keys("uploads/") == []


def test_an_upload_left_complete_but_unstored_by_an_older_version_is_handed_back(
    ingest: RunningIngest,
) -> None:
    from sqlalchemy import text

    from sonobridge.ingest.handlers.recovery import recover_uploads

    data = synthetic_instance(seed=41, frames=3)
    cut = len(data) // 2
    with ingest.client() as client:
        path = tus_create(client, new_exam(client), len(data))
        session_id = path.rsplit("/", 1)[1]
        # The state the issue found: both parts under the old names, offset at the end, open.
        for start, end in ((0, cut), (cut, len(data))):
            key = f"uploads/{session_id}/{start:020d}.part"
            ingest.store.put(key, io.BytesIO(data[start:end]), length=end - start)
        with ingest.engine.begin() as conn:
            conn.execute(
                text("UPDATE upload_sessions SET upload_offset=:n WHERE session_id=:id"),
                {"n": len(data), "id": session_id},
            )
        recovered = recover_uploads(ingest.host.app.state.deps, sole_owner=False)
        assert (recovered.reopened, recovered.parts_removed) == (1, 1)
        head = client.head(path, headers=TUS)
        assert (int(head.headers["Upload-Offset"]), head.headers["SonoBridge-Upload-State"]) == (
            cut,
            "open",
        )
        assert tus_patch(client, path, cut, data[cut:]).status_code == 204
    study, series, sop = uids(data)
    assert ingest.object_bytes(f"dicom/{study}/{series}/{sop}.dcm") == data
    assert ingest.stored_keys("uploads/") == []
