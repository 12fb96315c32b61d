"""Benchmark STOW-RS on real MinIO+PostgreSQL(+Kafka): instances/s, MB/s, and peak memory.

Run: uv run python bench/ingest/bench_stow.py [--instances 40] [--size-mb 2] [--big-mb 1024]
Needs the local stack (make up / deploy/local/up.sh). Prints figures; passes or fails nothing.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from infra_fixtures import local_env  # noqa: E402
from ingest.ingest_support import running_ingest  # noqa: E402

from sonobridge.common.auth import LocalIssuer  # noqa: E402
from sonobridge.common.bus.kafka import KafkaEventBus  # noqa: E402
from sonobridge.common.db import create_db_engine, drop_database  # noqa: E402
from sonobridge.common.objects.minio import MinioObjectStore  # noqa: E402

ROWS, COLUMNS = 480, 640
FRAME_BYTES = ROWS * COLUMNS * 3


def _header(frames: int, study: str) -> bytes:
    """Encode a US multi-frame header whose pixel data (native RGB) the caller appends."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "US"
    ds.PatientID = "BENCH"
    ds.Rows, ds.Columns = ROWS, COLUMNS
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = frames
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    length = frames * FRAME_BYTES
    return out.getvalue() + b"\xe0\x7f\x10\x00OB\x00\x00" + length.to_bytes(4, "little")


def _instance_chunks(frames: int, study: str, seed: int) -> Iterator[bytes]:
    """Yield an instance's bytes frame by frame (never whole in memory)."""
    rng = np.random.default_rng(seed)
    yield _header(frames, study)
    frame = rng.integers(0, 256, size=FRAME_BYTES, dtype=np.uint8).tobytes()
    for _ in range(frames):
        yield frame


def _stow_body(chunks: Iterator[bytes], boundary: str) -> Iterator[bytes]:
    yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    yield from chunks
    yield f"\r\n--{boundary}--\r\n".encode()


def _stow(client: httpx.Client, chunks: Iterator[bytes]) -> None:
    boundary = uuid.uuid4().hex
    response = client.post(
        "/dicomweb/studies",
        content=_stow_body(chunks, boundary),
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
        },
    )
    response.raise_for_status()


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _throughput(ingest, clients: int, count: int, frames: int) -> tuple[float, float]:
    size = len(_header(frames, "1.2.3")) + frames * FRAME_BYTES
    study = generate_uid()

    def work(worker: int) -> None:
        with ingest.client(roles=("service",)) as client:
            for i in range(count // clients):
                _stow(client, _instance_chunks(frames, study, worker * 10_000 + i))

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(work, range(clients)))
    elapsed = time.perf_counter() - started
    done = (count // clients) * clients
    return done / elapsed, done * size / elapsed / 1e6


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=40)
    parser.add_argument("--size-mb", type=float, default=2.0, help="size of each STOW instance")
    parser.add_argument("--big-mb", type=int, default=1024, help="size of the big instance")
    args = parser.parse_args()
    env = local_env()
    issuer = LocalIssuer("bench", audience="sonobridge")
    store = MinioObjectStore(
        env["SONOBRIDGE_TEST_MINIO"],
        env["SONOBRIDGE_TEST_MINIO_ACCESS_KEY"],
        env["SONOBRIDGE_TEST_MINIO_SECRET_KEY"],
        f"bench-{uuid.uuid4().hex[:12]}",
    )
    store.ensure_bucket()
    from sqlalchemy import create_engine, text

    admin = create_engine(env["SONOBRIDGE_TEST_PG_URL"], isolation_level="AUTOCOMMIT")
    db = f"bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    from sqlalchemy.engine import make_url

    url = make_url(env["SONOBRIDGE_TEST_PG_URL"]).set(database=db)
    engine = create_db_engine(url.render_as_string(hide_password=False))
    bus = KafkaEventBus(env["SONOBRIDGE_TEST_KAFKA"])
    frames = max(1, round(args.size_mb * 1e6 / FRAME_BYTES))
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            running_ingest(
                Path(tmp), issuer, bus=bus, store=store, engine=engine, dimse_enabled=False
            ) as ingest,
        ):
            per_instance = len(_header(frames, "1.2.3")) + frames * FRAME_BYTES
            print(f"STOW-RS, {per_instance / 1e6:.1f} MB instances, MinIO+PostgreSQL+Kafka")
            base_ips, base_mbs = _throughput(ingest, 1, max(4, args.instances // 4), frames)
            print(f"  1 client : {base_ips:6.1f} instances/s {base_mbs:7.1f} MB/s (baseline)")
            ips, mbs = _throughput(ingest, 4, args.instances, frames)
            print(
                f"  4 clients: {ips:6.1f} instances/s {mbs:7.1f} MB/s "
                f"({ips / base_ips:.2f}x baseline)"
            )
            big_frames = max(1, args.big_mb * 1024 * 1024 // FRAME_BYTES)
            before = _rss_mb()
            peak = [before]
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    peak[0] = max(peak[0], _rss_mb())
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.perf_counter()
            with ingest.client(roles=("service",)) as client:
                _stow(client, _instance_chunks(big_frames, generate_uid(), 1))
            elapsed = time.perf_counter() - started
            stop.set()
            sampler.join()
            big = big_frames * FRAME_BYTES / 1e6
            print(
                f"Big instance: {big:.0f} MB ({big_frames} frames) in {elapsed:.1f} s; "
                f"process RSS {before:.0f} MB before, peak {peak[0]:.0f} MB "
                f"(+{peak[0] - before:.0f} MB, client and server in one process)"
            )
    finally:
        bus.close()
        engine.dispose()
        with admin.connect() as conn:
            drop_database(conn, db)
        admin.dispose()
        os.environ.pop("UNUSED", None)


if __name__ == "__main__":
    main()
