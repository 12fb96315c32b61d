"""Benchmark: the single-node edition's idle RSS and start-up-to-ready time, before and after.

Each run starts a fresh single node in its own process, waits until ready, lets it settle and
reads VmRSS from /proc/self/status. "before" warms CPU models at batch 1 and the batcher's
largest batch, as before #18; "after" is the code as it is. Runs are interleaved pairs. Usage:
    uv run python bench/inference/bench_idle.py [--pairs 3] [--settle 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _child(variant: str, settle: float) -> None:
    """Start a single node, wait for ready, print RSS and ready time as JSON."""
    from sonobridge.inference.runtime import registry
    from sonobridge.node.cli import wait_ready
    from sonobridge.node.consortium import demo_consortium
    from sonobridge.node.demo import node_settings_for
    from sonobridge.node.edition import NodePorts, SingleNode

    if variant == "before":
        registry.warm_up_batches = lambda _provider, largest: sorted({1, largest})
    rss_imported = _rss_mb()
    with tempfile.TemporaryDirectory(prefix="sb-idle-") as tmp:
        started = time.perf_counter()
        node = SingleNode(
            Path(tmp),
            ports=NodePorts.ephemeral(),
            extra_settings=node_settings_for(demo_consortium()),
        )
        node.start()
        try:
            wait_ready(node)
            ready_s = time.perf_counter() - started
            time.sleep(settle)
            print(json.dumps({"rss_mb": _rss_mb(), "ready_s": ready_s, "imported": rss_imported}))
        finally:
            node.stop()


def main() -> None:
    """Run interleaved before/after pairs and print medians and ratios."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.settle)
        return
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(args.pairs):
        for variant in runs:
            out = subprocess.run(
                [sys.executable, __file__, "--child", variant, "--settle", str(args.settle)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            runs[variant].append(json.loads(out.splitlines()[-1]))
            print(f"  {variant:<6} {runs[variant][-1]}", flush=True)
    print(f"single node idle, median of {args.pairs} interleaved pairs")
    print(f"{'':<7} {'RSS MB':>7} {'ready s':>8} {'RSS after imports MB':>21}")
    medians = {}
    for variant, rows in runs.items():
        medians[variant] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        m = medians[variant]
        print(f"{variant:<7} {m['rss_mb']:>7.0f} {m['ready_s']:>8.2f} {m['imported']:>21.0f}")
    b, a = medians["before"], medians["after"]
    saved = a["rss_mb"] - b["rss_mb"]
    print(
        f"after/before: RSS x{a['rss_mb'] / b['rss_mb']:.2f} ({saved:+.0f} MB), "
        f"ready x{a['ready_s'] / b['ready_s']:.2f}"
    )


if __name__ == "__main__":
    main()
