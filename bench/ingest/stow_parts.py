"""Time the parts of the single node's small-instance STOW-RS path, to see what drives its p99.

Starts ingest in this process on the single node's adapters, sends pydicom's 0.22 MB US example
with fresh UIDs from 4 clients, and times each part that can stall a request: the staged
file's fsync, the folder fsync before a commit, the WAL fsync after it, a group's transaction
(with its size), and the wait at the write gate. Variants, in interleaved turns on a fresh
ingest each: "thread" checkpoints the WAL on a thread of its own (as built); "in-commit"
leaves it to SQLite, inside the commit that crosses 1,000 pages. Figures, never a pass/fail:

    uv run python bench/ingest/stow_parts.py [--instances 400] [--pairs 2]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench" / "ingest"))
sys.path.insert(0, str(REPO / "tests"))

from bench_vs_orthanc import _send, _small_instances  # noqa: E402
from ingest.ingest_support import running_ingest  # noqa: E402

from sonobridge.common import db, sqlite_writers  # noqa: E402
from sonobridge.common.auth import LocalIssuer  # noqa: E402
from sonobridge.common.objects import localdir  # noqa: E402
from sonobridge.ingest.adapters import group_commit  # noqa: E402

Timings = dict[str, list[float]]


@contextmanager
def _timed(timings: Timings) -> Iterator[None]:
    """Wrap each part with a timer that adds its seconds under its name."""
    patched: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, label: str, size: Callable[..., int] | None = None) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timings[label].append(time.perf_counter() - started)
                if size is not None:
                    timings[label + " size"].append(size(*args))

        patched.append((owner, name, original))
        setattr(owner, name, timed)

    wrap(localdir.LocalDirObjectStore, "stage", "stage (link + file fsync)")
    wrap(localdir.FolderSync, "__call__", "folder fsync")
    wrap(sqlite_writers.WalSync, "_fsync", "WAL fsync")
    wrap(sqlite_writers.GatedConnection, "enter", "gate wait")
    wrap(
        group_commit.GroupCommit,
        "_commit_group",
        "group transaction",
        lambda _s, g: len(g.requests),
    )
    try:
        yield
    finally:
        for owner, name, original in patched:
            setattr(owner, name, original)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def _run(args: argparse.Namespace, variant: str) -> None:
    timings: Timings = collections.defaultdict(list)
    issuer = LocalIssuer("bench", audience="sonobridge")
    with tempfile.TemporaryDirectory(prefix="stow-parts-") as tmp:
        database = str(Path(tmp) / "ingest.sqlite3")
        engine = db.create_db_engine(f"sqlite:///{database}")
        if variant == "in-commit":
            # After the engine's own pragmas: SQLite checkpoints in the commit, as by default.
            event.listen(
                engine, "connect", lambda conn, _r: conn.execute("PRAGMA wal_autocheckpoint=1000")
            )
            db.gated_connection_class(database).wal.checkpoints = None
        try:
            with running_ingest(Path(tmp), issuer, dimse_enabled=False, engine=engine) as ingest:
                url = f"{ingest.base_url}/dicomweb/studies"
                headers = {"Authorization": f"Bearer {ingest.token(roles=('service',))}"}
                _send(url, headers, _small_instances(8), 4, lambda body: body)  # warm
                bodies = _small_instances(args.instances)
                with _timed(timings):
                    elapsed, latencies = _send(url, headers, bodies, 4, lambda body: body)
        finally:
            engine.dispose()
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[0]
    print(
        f"== {variant}: {len(bodies) / elapsed:.1f} instances/s, request p50 "
        f"{1000 * _percentile(latencies, 0.5):.0f} ms, p99 "
        f"{1000 * _percentile(latencies, 0.99):.0f} ms, max {1000 * max(latencies):.0f} ms "
        f"(load {load})"
    )
    for label, values in sorted(timings.items()):
        if label.endswith(" size"):
            print(
                f"   {label:28s} mean {sum(values) / len(values):.2f}  max {max(values):.0f}"
                f"  groups {len(values)}"
            )
            continue
        print(
            f"   {label:28s} n {len(values):5d}  p50 {1000 * _percentile(values, 0.5):7.1f} ms"
            f"  p99 {1000 * _percentile(values, 0.99):7.1f} ms  max {1000 * max(values):7.1f} ms"
            f"  total {sum(values):6.2f} s"
        )


def main() -> None:
    """Run the variants in interleaved turns and print each part's timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=400)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--variants", default="thread,in-commit")
    args = parser.parse_args()
    for _ in range(args.pairs):
        for variant in args.variants.split(","):
            _run(args, variant)


if __name__ == "__main__":
    main()
