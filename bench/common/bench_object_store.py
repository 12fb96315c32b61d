"""Benchmark: stream a large object in and out of each object store; print speed and peak memory.

Each adapter runs in a child process so its peak RSS is its own. The baseline is a plain
file copy of the same bytes in the same run. Usage:
    uv run python bench/common/bench_object_store.py [--mb 200] [--minio]
(--minio needs the local MinIO: `make up`.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

CHUNK = 1024 * 1024


def _pattern_file(path: Path, size: int) -> str:
    block = os.urandom(CHUNK)
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            piece = block[: min(CHUNK, left)]
            out.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def _child(adapter: str, source: str, workdir: str) -> None:
    """Run in a child: put the file, read it back, report timings and peak RSS."""
    from sonobridge.common.objects.localdir import LocalDirObjectStore
    from sonobridge.common.objects.minio import MinioObjectStore
    from sonobridge.common.objects.ports import ObjectStore

    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store: ObjectStore
    if adapter == "localdir":
        store = LocalDirObjectStore(Path(workdir) / "objects")
    elif adapter == "copy":
        store = None  # type: ignore[assignment]
    else:
        store = MinioObjectStore(
            os.environ.get("SONOBRIDGE_TEST_MINIO", "127.0.0.1:19000"),
            os.environ.get("SONOBRIDGE_TEST_MINIO_ACCESS_KEY", "sonobridge"),
            os.environ.get("SONOBRIDGE_TEST_MINIO_SECRET_KEY", "sonobridge-secret"),
            f"bench-{uuid.uuid4().hex[:10]}",
        )
        store.ensure_bucket()
    started = time.perf_counter()
    if store is None:
        shutil.copyfile(source, Path(workdir) / "copy.bin")
    else:
        with open(source, "rb") as stream:
            store.put("dicom/bench/cine/loop.dcm", stream)
    put_s = time.perf_counter() - started
    digest = hashlib.sha256()
    started = time.perf_counter()
    if store is None:
        with open(Path(workdir) / "copy.bin", "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    else:
        with store.open("dicom/bench/cine/loop.dcm") as chunks:
            for chunk in chunks:
                digest.update(chunk)
    get_s = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "put_s": put_s,
                "get_s": get_s,
                "sha256": digest.hexdigest(),
                "peak_rss_mb": peak_kb / 1024,
                "start_rss_mb": rss_start / 1024,
            }
        )
    )


def main() -> None:
    """Run each adapter and print a table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--minio", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    size = args.mb * CHUNK
    adapters = ["copy", "localdir"] + (["minio"] if args.minio else [])
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.bin"
        expected = _pattern_file(source, size)
        print(f"object: {args.mb} MiB; each adapter in its own process; RSS is the process peak")
        print(
            f"{'adapter':<10} {'put MB/s':>9} {'get MB/s':>9} {'peak RSS MiB':>13} "
            f"{'RSS/object':>11} {'identical':>9}"
        )
        baseline = None
        for adapter in adapters:
            work = Path(tmp) / adapter
            work.mkdir()
            out = (
                subprocess.run(
                    [sys.executable, __file__, "--child", adapter, str(source), str(work)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            r = json.loads(out)
            put, get = args.mb / r["put_s"], args.mb / r["get_s"]
            baseline = baseline or (put, get)
            print(
                f"{adapter:<10} {put:>9.0f} {get:>9.0f} {r['peak_rss_mb']:>13.1f} "
                f"{r['peak_rss_mb'] / args.mb:>11.2f} {r['sha256'] == expected!s:>9}"
                f"   (put x{put / baseline[0]:.2f}, get x{get / baseline[1]:.2f} of copy)"
            )
            shutil.rmtree(work)


if __name__ == "__main__":
    main()
