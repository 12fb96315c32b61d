"""A replica SIGKILLed while it holds an upload's append lock: the client resumes on another.

Two ingest replicas share PostgreSQL and MinIO, as in the cluster edition. Replica A (a child
process) takes the lock for a final chunk and is held inside its instance write; while it lives
it renews the lock's lease, so replica B refuses the same chunk (409 `upload_busy` with
`Retry-After`) for longer than a lease. Then A is SIGKILLed: HEAD on B answers the durable
offset (the acknowledged first chunk is kept) and the client's PATCH there, honouring
`Retry-After`, stores the instance within a lease or so, not after the 15 minutes a dead
request's lock used to block it (the lost exam of the chaos run).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx
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
from sonobridge.common.objects.ports import ObjectInfo

pytestmark = [pytest.mark.infra, pytest.mark.slow]

LEASE_S = 3.0
# Replica A's part writes stall this long (wall clock, so a SIGSTOP spends it).
PART_STALL_S = 5.0
TUS = {"Tus-Resumable": "1.0.0"}
# How long the resuming client may take; the lock of a dead request used to block 15 minutes.
RESUME_BOUND_S = 60.0


@dataclass
class Shared:
    """The servers both replicas use."""

    pg_url: str
    minio: Any
    bucket: str

    def store(self) -> MinioObjectStore:
        """A client of the shared bucket."""
        return MinioObjectStore(
            self.minio.endpoint, self.minio.access_key, self.minio.secret_key, self.bucket
        )


class StuckStore(MinioObjectStore):
    """MinIO on a stalling disk: the writer holds the upload's lock while a write hangs."""

    def put(self, key: str, stream: BinaryIO, **options: Any) -> ObjectInfo:
        """Write an object after a stall: an instance's until killed, an upload part's a while."""
        time.sleep(600 if key.startswith("dicom/") else PART_STALL_S)
        return super().put(key, stream, **options)


def _replica_main(config_path: str) -> None:
    """Run replica A until killed: ingest on the shared servers with a stalling store."""
    config = json.loads(Path(config_path).read_text())
    issuer = LocalIssuer(config["issuer"], private_pem=config["pem"].encode())
    store = StuckStore(
        config["endpoint"], config["access_key"], config["secret_key"], config["bucket"]
    )
    engine = create_db_engine(config["pg_url"])
    with running_ingest(
        Path(config["data_dir"]),
        issuer,
        store=store,
        engine=engine,
        upload_lock_lease_seconds=LEASE_S,
    ) as running:
        print(running.base_url, flush=True)
        time.sleep(3600)


@pytest.fixture
def shared(pg_database: str, minio_endpoint: Any, unique_bucket: str) -> Shared:
    """A fresh database and bucket for the two replicas."""
    servers = Shared(pg_database, minio_endpoint, unique_bucket)
    servers.store().ensure_bucket()
    return servers


@dataclass
class Child:
    """Replica A's process and where it serves."""

    proc: subprocess.Popen[str]
    url: str

    def client(self, peer: RunningIngest, timeout: float) -> httpx.Client:
        """A client of A with a token from the issuer both replicas trust."""
        auth = {"Authorization": f"Bearer {peer.token()}"}
        return httpx.Client(base_url=self.url, headers=auth, timeout=timeout)


@pytest.fixture
def replica_a(tmp_path: Path, issuer: LocalIssuer, shared: Shared) -> Iterator[Child]:
    """Replica A in a child process (so that it can be SIGKILLed)."""
    data_dir = tmp_path / "a"
    data_dir.mkdir()
    config = tmp_path / "a.json"
    config.write_text(
        json.dumps(
            {
                "issuer": issuer.issuer,
                "pem": issuer.private_pem().decode(),
                "endpoint": shared.minio.endpoint,
                "access_key": shared.minio.access_key,
                "secret_key": shared.minio.secret_key,
                "bucket": shared.bucket,
                "pg_url": shared.pg_url,
                "data_dir": str(data_dir),
            }
        )
    )
    tests = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, __file__, str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()  # printed once it serves
        assert url.startswith("http://"), "replica A did not start"
        yield Child(proc, url)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


@pytest.fixture
def replica_b(
    tmp_path: Path, issuer: LocalIssuer, shared: Shared, replica_a: Child
) -> Iterator[RunningIngest]:
    """Replica B in this process, started after A migrated the shared database."""
    data_dir = tmp_path / "b"
    data_dir.mkdir()
    engine = create_db_engine(shared.pg_url)
    try:
        with running_ingest(
            data_dir, issuer, store=shared.store(), engine=engine, upload_lock_lease_seconds=LEASE_S
        ) as running:
            yield running
    finally:
        engine.dispose()


def _status(b: RunningIngest, path: str) -> str:
    with b.engine.connect() as conn:
        query = text("SELECT status FROM upload_sessions WHERE session_id = :s")
        return str(conn.execute(query, {"s": path.rsplit("/", 1)[1]}).scalar_one())


def _locked(b: RunningIngest, path: str) -> bool:
    """Wait (a little) for replica A to take the upload's append lock."""
    until = time.monotonic() + 4
    while _status(b, path) != "appending" and time.monotonic() < until:
        time.sleep(0.05)
    return _status(b, path) == "appending"


def test_a_killed_lock_holder_lets_the_client_resume_on_another_replica(
    replica_a: Child, replica_b: RunningIngest
) -> None:
    data = synthetic_instance(seed=77, frames=4, rows=120, columns=160)
    cut = len(data) // 2
    with replica_b.client() as b, replica_a.client(replica_b, timeout=5) as a:
        path = tus_create(b, new_exam(b), len(data))
        assert tus_patch(b, path, 0, data[:cut]).status_code == 204  # acknowledged bytes
        with pytest.raises(httpx.ReadTimeout):
            tus_patch(a, path, cut, data[cut:])  # A stalls storing it; the client gives up
        assert _locked(replica_b, path)
        # A lives and renews its lease: B refuses the chunk, saying when to ask again.
        refused_until = time.monotonic() + 2 * LEASE_S
        while time.monotonic() < refused_until:
            busy = tus_patch(b, path, cut, data[cut:])
            assert (busy.status_code, busy.json()["reason"]) == (409, "upload_busy"), busy.text
            assert 1 <= int(busy.headers["Retry-After"]) <= LEASE_S
            time.sleep(0.5)
        os.kill(replica_a.proc.pid, signal.SIGKILL)
        replica_a.proc.wait(30)
        killed = time.monotonic()
        head = b.head(path, headers=TUS)
        assert int(head.headers["Upload-Offset"]) == cut  # nothing acknowledged is lost
        answers = _resume(b, path, cut, data[cut:])
        resumed = time.monotonic() - killed
    print(f"\nresumed {resumed:.1f}s after the kill (lease {LEASE_S}s), answers {answers}")
    assert answers[-1] == 204, answers
    study, series, sop = uids(data)
    assert replica_b.object_bytes(f"dicom/{study}/{series}/{sop}.dcm") == data
    assert _status(replica_b, path) == "stored"


def _resume(b: httpx.Client, path: str, offset: int, chunk: bytes) -> list[int]:
    """PATCH at `offset` until it is not 409, waiting each Retry-After; return the statuses."""
    answers: list[int] = []
    began = time.monotonic()
    while time.monotonic() - began < RESUME_BOUND_S:
        answer = tus_patch(b, path, offset, chunk)
        answers.append(answer.status_code)
        if answer.status_code != 409:
            break
        time.sleep(int(answer.headers["Retry-After"]))
    return answers


def test_a_frozen_lock_holder_is_taken_over_and_its_late_commit_changes_nothing(
    replica_a: Child, replica_b: RunningIngest
) -> None:
    data = synthetic_instance(seed=78, frames=4, rows=120, columns=160)
    cut = len(data) // 2
    with replica_b.client() as b, replica_a.client(replica_b, timeout=1) as a:
        path = tus_create(b, new_exam(b), len(data))
        with pytest.raises(httpx.ReadTimeout):
            tus_patch(a, path, 0, data[:cut])  # A locks and stalls writing the part
        assert _locked(replica_b, path)
        os.kill(replica_a.proc.pid, signal.SIGSTOP)  # frozen holding the lock (a paused pod)
        try:
            frozen = time.monotonic()
            answers = _resume(b, path, 0, data[:cut])
            took_over = time.monotonic() - frozen
            assert answers[-1] == 204, answers
            assert tus_patch(b, path, cut, data[cut:]).status_code == 204
        finally:
            os.kill(replica_a.proc.pid, signal.SIGCONT)
        # A wakes, writes its part, finds its lock taken over: it commits nothing, deletes it.
        # A HEAD on A waits for A's own PATCH of the upload to have answered (at most 10 s).
        head = a.head(path, headers=TUS, timeout=30)
    print(f"\ntaken over {took_over:.1f}s after the freeze (lease {LEASE_S}s), answers {answers}")
    assert replica_b.stored_keys("uploads/") == []
    assert (int(head.headers["Upload-Offset"]), _status(replica_b, path)) == (len(data), "stored")
    study, series, sop = uids(data)
    assert replica_b.object_bytes(f"dicom/{study}/{series}/{sop}.dcm") == data


if __name__ == "__main__":
    _replica_main(sys.argv[1])
