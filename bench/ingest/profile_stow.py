"""Profile the small-instance STOW-RS path with py-spy and print where store_instance spends time.

Starts ingest in this process on the single node's adapters (SQLite, a directory, the embedded
log) or the cluster edition's (PostgreSQL, MinIO, Kafka; started on demand as the tests do),
sends pydicom's 0.22 MB US example with fresh UIDs from 4 clients, samples this process with
`py-spy record --format raw` (py-spy is in the dev group) and prints the share of the
store_instance samples under each frame, plus instances/s and latency. Variants, run in
interleaved turns, each on a fresh ingest: "before" is the path before #18 (a claim and an
update, two write transactions; SQLite with synchronous=FULL and writers polling in its busy
handler); "claim" is the SQLite writers as built (gate, grouped WAL fsync) with the two
transactions; "after" is the code as built (one transaction for instances up to
SMALL_INSTANCE_BYTES). On the cluster edition (PostgreSQL) only the transactions differ.
Figures, never a pass/fail:

    uv run python bench/ingest/profile_stow.py [--edition single|cluster] [--instances 300]
        [--variants before,claim,after] [--pairs 1] [--roots store_instance,*]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench" / "ingest"))
sys.path.insert(0, str(REPO / "tests"))

from bench_vs_orthanc import _send, _small_instances  # noqa: E402
from ingest.ingest_support import running_ingest  # noqa: E402

from sonobridge.common import db  # noqa: E402
from sonobridge.common.auth import LocalIssuer  # noqa: E402
from sonobridge.ingest.handlers import instances  # noqa: E402

SMALL_AS_BUILT = instances.SMALL_INSTANCE_BYTES
CONNECTION_AS_BUILT = db.gated_connection_class


@contextlib.contextmanager
def _single_adapters(data_dir: Path, variant: str) -> Iterator[dict[str, Any]]:
    """The single node's SQLite engine; for "before" as it was: plain connections, FULL sync."""
    db.gated_connection_class = (
        (lambda _path: sqlite3.Connection) if variant == "before" else CONNECTION_AS_BUILT
    )
    engine = db.create_db_engine(f"sqlite:///{data_dir / 'ingest.sqlite3'}")
    if variant == "before":
        # Registered after the engine's own pragmas, so it runs after them.
        event.listen(
            engine, "connect", lambda conn, _record: conn.execute("PRAGMA synchronous=FULL")
        )
    try:
        yield {"engine": engine}
    finally:
        engine.dispose()
        db.gated_connection_class = CONNECTION_AS_BUILT


ROOT_FRAME = "store_instance"


@contextlib.contextmanager
def _cluster_adapters() -> Iterator[dict[str, Any]]:
    """A fresh bucket and database on the local MinIO and PostgreSQL, and the Kafka bus."""
    from bench_vs_orthanc import local_servers

    with local_servers() as env:
        yield from _fresh_adapters(env)


def _fresh_adapters(env: dict[str, str]) -> Iterator[dict[str, Any]]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from sonobridge.common.bus.kafka import KafkaEventBus
    from sonobridge.common.db import create_db_engine, drop_database
    from sonobridge.common.objects.minio import MinioObjectStore

    name = f"profile{uuid.uuid4().hex[:10]}"
    store = MinioObjectStore(
        env["SONOBRIDGE_TEST_MINIO"],
        env["SONOBRIDGE_TEST_MINIO_ACCESS_KEY"],
        env["SONOBRIDGE_TEST_MINIO_SECRET_KEY"],
        name,
    )
    store.ensure_bucket()
    admin = create_engine(env["SONOBRIDGE_TEST_PG_URL"], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(env["SONOBRIDGE_TEST_PG_URL"]).set(database=name)
    engine = create_db_engine(url.render_as_string(hide_password=False))
    bus = KafkaEventBus(env["SONOBRIDGE_TEST_KAFKA"])
    try:
        yield {"store": store, "engine": engine, "bus": bus}
    finally:
        bus.close()
        engine.dispose()
        with admin.connect() as conn:
            drop_database(conn, name)
        admin.dispose()
        for key in list(store.list("")):
            store.delete(key)


def _report(raw: Path, top: int, root_frame: str = ROOT_FRAME) -> None:
    """Print the inclusive share of `root_frame`'s samples under each frame, and self time."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        names = [
            f.split(" (")[0] + " " + f.split(" (")[-1].split("/")[-1].rstrip(")") for f in frames
        ]
        try:
            # "*" reports over every sample of the process: transport, auth and idle threads too.
            root = (
                0
                if root_frame == "*"
                else next(i for i, f in enumerate(frames) if f.startswith(root_frame + " "))
            )
        except StopIteration:
            continue
        n = int(count)
        total += n
        for name in set(names[root:]):
            inclusive[name] += n
        own[names[-1]] += n
    if not total:
        print(f"no {root_frame} samples")
        return
    print(f"{total} samples in {root_frame}; inclusive share of them:")
    for name, n in inclusive.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("self time (leaf frames):")
    for name, n in own.most_common(top // 2):
        print(f"  {100 * n / total:5.1f}%  {name}")


def _profile(args: argparse.Namespace, variant: str) -> float:
    """Profile one fresh ingest in the given variant (see the module's docstring)."""
    instances.SMALL_INSTANCE_BYTES = SMALL_AS_BUILT if variant == "after" else -1
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    issuer = LocalIssuer("bench", audience="sonobridge")
    with (
        tempfile.TemporaryDirectory(prefix="profile-stow-") as tmp,
        (
            _cluster_adapters()
            if args.edition == "cluster"
            else _single_adapters(Path(tmp), variant)
        ) as chosen,
        running_ingest(Path(tmp), issuer, dimse_enabled=False, **chosen) as ingest,
    ):
        url = f"{ingest.base_url}/dicomweb/studies"
        headers = {"Authorization": f"Bearer {ingest.token(roles=('service',))}"}
        _send(url, headers, _small_instances(8), 4, lambda body: body)  # warm
        bodies = _small_instances(args.instances)
        raw = Path(tmp) / "profile.txt"
        command = [spy, "record", "--pid", str(os.getpid()), "--format", "raw", "--threads"]
        recorder = subprocess.Popen(
            [*command, "--rate", str(args.rate), "--output", str(raw)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # py-spy attaches
        elapsed, lat = _send(url, headers, bodies, 4, lambda body: body)
        recorder.send_signal(signal.SIGINT)
        recorder.wait(60)
        rate = len(bodies) / elapsed
        lat.sort()
        print(
            f"== {args.edition} {variant}: {rate:.1f} instances/s, p50 "
            f"{1000 * lat[len(lat) // 2]:.0f} ms, p99 {1000 * lat[int(len(lat) * 0.99)]:.0f} ms "
            "(4 clients, under py-spy)"
        )
        for root_frame in args.roots.split(","):
            _report(raw, args.top, root_frame)
        return rate


def main() -> None:
    """Run the variants in interleaved turns under py-spy; print profiles and rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edition", choices=("single", "cluster"), default="single")
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--variants", default="before,after")
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument(
        "--roots",
        default=ROOT_FRAME,
        help="frames to report under, comma-separated; * for every sample",
    )
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rates: dict[str, list[float]] = {v: [] for v in args.variants.split(",")}
    for _ in range(args.pairs):
        for variant, seen in rates.items():
            seen.append(_profile(args, variant))
    print(
        "instances/s: " + ", ".join(f"{v} {sorted(r)[len(r) // 2]:.1f}" for v, r in rates.items())
    )
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
