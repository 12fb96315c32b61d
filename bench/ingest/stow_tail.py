"""Where STOW-RS's slow small-instance requests go: per-request timeline vs the server's events.

Starts the single node or the cluster edition as bench_vs_orthanc.py does, with the bench-only
probe (bench/ingest/tail_probe) logging GC passes, outbox relay passes, bus sends, object puts,
SQL commits, pool waits and event-loop callbacks over 5 ms in every service process. 4 clients
send pydicom's US example with fresh UIDs; each request's wall-clock span is kept. For the
requests over p95 and for all of them it prints how many overlap each kind of server event and
the mean overlapped milliseconds, with the load average. Figures only, never a pass/fail:

    uv run python bench/ingest/stow_tail.py [--system single|cluster] [--small 400]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_vs_orthanc as bench  # noqa: E402


def _spans(url: str, headers: dict[str, str], bodies: list[bytes]) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        mine = []
        with httpx.Client(headers=headers, timeout=300) as client:
            for body in bodies[worker::4]:
                wall = time.time()
                mine.append((wall, wall + bench._post(client, url, body)))
        with lock:
            spans.extend(mine)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    return spans


def _load(url: str, headers: dict[str, str], count: int) -> list[tuple[float, float]]:
    bodies = bench._small_instances(count + 1)
    with httpx.Client(headers=headers, timeout=60) as client:
        bench._post(client, url, bodies.pop())
    return _spans(url, headers, bodies)


def _events(prefix: str) -> list[tuple[str, float, float]]:
    events = []
    for path in Path(prefix).parent.glob(Path(prefix).name + ".*"):
        for line in path.read_text().splitlines():
            kind, start, seconds = line.split()
            events.append((f"{kind}@{path.suffix[1:]}", float(start), float(seconds)))
    return events


def _report(spans: list[tuple[float, float]], events: list[tuple[str, float, float]]) -> None:
    lat = np.array([b - a for a, b in spans])
    p95 = float(np.percentile(lat, 95))
    print(
        f"{len(spans)} requests: p50 {np.percentile(lat, 50) * 1000:.1f} ms, "
        f"p95 {p95 * 1000:.1f}, p99 {np.percentile(lat, 99) * 1000:.1f}, "
        f"max {lat.max() * 1000:.1f}; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    first, last = min(a for a, _ in spans), max(b for _, b in spans)
    window = [e for e in events if e[1] + e[2] >= first and e[1] <= last]
    kinds = sorted({k for k, _, _ in window})
    print(
        f"{'server event@pid':<34}{'n':>6}{'sum ms':>9}{'max ms':>8}"
        f"{'slow hit':>10}{'ms/slow':>9}{'all hit':>9}{'ms/req':>8}"
    )
    slow = [s for s, x in zip(spans, lat, strict=True) if x > p95]
    for kind in kinds:
        mine = [(s, s + d) for k, s, d in window if k == kind]

        def overlap(
            group: list[tuple[float, float]], mine: list[tuple[float, float]] = mine
        ) -> tuple[float, float]:
            hits, total = 0, 0.0
            for a, b in group:
                o = sum(max(0.0, min(b, e1) - max(a, e0)) for e0, e1 in mine)
                hits += o > 0
                total += o
            return hits / len(group), total / len(group) * 1000

        sh, sm = overlap(slow)
        ah, am = overlap(spans)
        durs = [e1 - e0 for e0, e1 in mine]
        print(
            f"{kind:<34}{len(mine):>6}{sum(durs) * 1000:>9.1f}{max(durs) * 1000:>8.1f}"
            f"{sh:>10.0%}{sm:>9.1f}{ah:>9.0%}{am:>8.1f}"
        )
    # Each slow request with the longest events it overlapped.
    for (a, b), x in sorted(zip(spans, lat, strict=True), key=lambda t: -t[1])[:8]:
        over = collections.Counter()
        for k, s, d in window:
            o = max(0.0, min(b, s + d) - max(a, s))
            if o > 0:
                over[k] += o * 1000
        top = ", ".join(f"{k} {v:.0f}" for k, v in over.most_common(4))
        print(f"  slow {x * 1000:6.1f} ms at +{a - first:6.2f} s: {top}")


def main() -> None:
    """Run one system under the probe and print the slow requests' breakdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="cluster", choices=("single", "cluster"))
    parser.add_argument("--small", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stow-tail-") as logs:
        prefix = f"{logs}/probe"
        os.environ["SONOBRIDGE_TAIL_LOG"] = prefix
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(HERE / "tail_probe"), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        spans = _run(args)
        time.sleep(0.5)
        _report(spans, _events(prefix))


def _run(args: argparse.Namespace) -> list[tuple[float, float]]:
    if args.system == "single":
        with (
            tempfile.TemporaryDirectory(prefix="stow-tail-single-") as tmp,
            bench.single_process(tmp) as (_, url, headers),
        ):
            time.sleep(2)
            return _load(url, headers, args.small)
    from sonobridge.node.consortium import demo_consortium
    from sonobridge.node.issuer import issuer_for

    with (
        tempfile.TemporaryDirectory(prefix="stow-tail-cluster-") as tmp,
        bench._cluster(Path(tmp)) as edition,
    ):
        edition.start()
        time.sleep(2)
        token = demo_consortium().token(issuer_for(Path(tmp)), bench.OPERATOR)
        headers = {"Authorization": f"Bearer {token}"}
        return _load(f"{edition.urls()['ingest']}/dicomweb/studies", headers, args.small)


if __name__ == "__main__":
    main()
