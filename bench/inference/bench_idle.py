"""Benchmark: idle RSS and start-up-to-ready of `sonobridge serve`, and of each cluster service.

Single node: runs the real command (`python -m sonobridge.node serve`) as a child, from spawn
to the line it prints once every service's /readyz answers 200, then lets it settle and reads
the child's VmRSS and CPU seconds from /proc. "first" starts on an empty data directory (schema
migrations run); "restart" starts again on that directory, as a county box does every morning.
With --base DIR (a checkout of another commit, e.g. `git archive main | tar -x -C DIR`), that
code runs in interleaved turns with this checkout's, so before and after share one load. Each
tree first starts once unmeasured with bytecode caching on, as a box has its .pyc files after
its first start (images compile them at build); PYTHONDONTWRITEBYTECODE=1 would otherwise make
every start compile ~1,500 modules, about half of its CPU.

On a shared machine the wall time to ready measures the other jobs more than this code; with
--nice -10 (root) the child runs ahead of them, which approximates an otherwise idle box.

Cluster (--cluster): the four services as separate processes on the local Kafka, MinIO and
PostgreSQL (`eval "$(deploy/local/env.sh)"` first), each one's idle RSS once all are ready.

    uv run python bench/inference/bench_idle.py [--pairs 3] [--restarts 1] [--settle 2]
        [--base DIR] [--nice -10]
    uv run python bench/inference/bench_idle.py --cluster
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVICES = ("common", "ingest", "inference", "reporting", "maintenance", "node")
MEMBERS = ("proto", "lab/src", *(f"services/{s}/src" for s in SERVICES))
READY_LINE = "single-node edition is serving"
TICKS = os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    """Return a process's resident set in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def proc_cpu_s(pid: int) -> float:
    """Return a process's user + system CPU seconds so far (robust to a loaded machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def code_env(tree: Path | None) -> dict[str, str]:
    """The environment that runs `tree`'s code (None: this checkout's, as installed)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if tree is not None:
        # Ahead of the editable installs' paths, so the other tree's packages win.
        env["PYTHONPATH"] = os.pathsep.join(str(tree / m) for m in MEMBERS)
    return env


def serve_once(
    data_dir: Path, env: dict[str, str], settle: float, nice: int = 0
) -> dict[str, float]:
    """Start `sonobridge serve`, wait for its ready line, settle, measure, stop it."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sonobridge.node",
            "--data-dir",
            str(data_dir),
            "serve",
            "--ephemeral-ports",
            "--login-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        preexec_fn=(lambda: os.nice(nice)) if nice else None,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if READY_LINE in line:
                break
        else:
            raise RuntimeError(f"serve exited with {proc.wait()} before ready")
        ready_s = time.perf_counter() - started
        cpu_ready = proc_cpu_s(proc.pid)
        time.sleep(settle)
        return {"rss_mb": proc_rss_mb(proc.pid), "ready_s": ready_s, "cpu_s": cpu_ready}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def single(args: argparse.Namespace) -> None:
    """Interleave first start and restart of each tree; print medians."""
    trees: dict[str, Path | None] = {"this": None}
    if args.base:
        trees = {"base": Path(args.base).resolve(), "this": None}
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for label, tree in trees.items():
        with tempfile.TemporaryDirectory(prefix="sb-idle-warm-") as tmp:
            print(f"  {label:<5} warm-up  {serve_once(Path(tmp) / 'node', code_env(tree), 0)}")
    load_before = os.getloadavg()
    for _ in range(args.pairs):
        for label, tree in trees.items():
            env = code_env(tree)
            with tempfile.TemporaryDirectory(prefix="sb-idle-") as tmp:
                for phase in ("first", *["restart"] * args.restarts):
                    row = serve_once(Path(tmp) / "node", env, args.settle, args.nice)
                    # The 1-minute load average as this start ended: the figure's context.
                    row["load"] = os.getloadavg()[0]
                    runs.setdefault((label, phase), []).append(row)
                    print(f"  {label:<5} {phase:<8} {row}", flush=True)
    print(
        f"`sonobridge serve`, all four services, {args.pairs} interleaved turns"
        f" ({args.restarts} restart(s) each): median (min-max)"
        + (f", child at nice {args.nice}" if args.nice else "")
    )
    print(
        f"{'code':<6} {'start':<8} {'n':>3} {'idle RSS MB':>16} {'ready s':>17}"
        f" {'CPU s to ready':>17} {'load':>11}"
    )
    for (label, phase), rows in runs.items():
        cells = []
        for key, fmt in (("rss_mb", ".0f"), ("ready_s", ".2f"), ("cpu_s", ".2f")):
            values = [r[key] for r in rows]
            cells.append(
                f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"
            )
        loads = [r["load"] for r in rows]
        print(
            f"{label:<6} {phase:<8} {len(rows):>3} {cells[0]:>16} {cells[1]:>17} {cells[2]:>17}"
            f" {min(loads):>5.1f}-{max(loads):<5.1f}"
        )
    print(
        "load average before: "
        + " ".join(f"{v:.2f}" for v in load_before)
        + ", after: "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
    )


def cluster(args: argparse.Namespace) -> None:
    """Start the cluster edition's four processes (first start, then a restart) per tree."""
    from sonobridge.node.cluster import ClusterEdition, Infra
    from sonobridge.node.consortium import demo_consortium

    trees: dict[str, Path | None] = {"this": None}
    if args.base:
        trees = {"base": Path(args.base).resolve(), "this": None}
    rows = []
    for label, tree in trees.items():
        saved = os.environ.get("PYTHONPATH")
        os.environ.update({k: v for k, v in code_env(tree).items() if k == "PYTHONPATH"})
        try:
            with tempfile.TemporaryDirectory(prefix="sb-idle-cluster-") as tmp:
                edition = ClusterEdition.ephemeral(
                    Path(tmp), Infra.from_env(), demo_consortium(), f"idle{os.getpid()}{label}"
                )
                for phase in ("first", "restart"):
                    edition.prepare(fresh=phase == "first")
                    started = time.perf_counter()
                    edition.start()
                    ready_s = time.perf_counter() - started
                    try:
                        time.sleep(args.settle)
                        for name in ("ingest", "inference", "reporting", "maintenance"):
                            pid = edition.running(name)
                            assert pid is not None, f"{name} is not running"
                            rows.append(
                                (label, phase, name, proc_rss_mb(pid), proc_cpu_s(pid), ready_s)
                            )
                            print(f"  {rows[-1]}", flush=True)
                    finally:
                        edition.stop()
        finally:
            os.environ.pop("PYTHONPATH", None)
            if saved is not None:
                os.environ["PYTHONPATH"] = saved
    print("cluster edition, one process per service, idle after all four are ready")
    print(
        f"{'code':<6} {'start':<8} {'service':<12} {'RSS MB':>7} {'CPU s':>6} {'all ready s':>12}"
    )
    for label, phase, name, rss, cpu, ready in rows:
        print(f"{label:<6} {phase:<8} {name:<12} {rss:>7.0f} {cpu:>6.2f} {ready:>12.1f}")
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def main() -> None:
    """Run the single-node comparison, or the cluster edition's per-service figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=1, help="restarts after each first start")
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--base", help="another checkout to run in interleaved turns")
    parser.add_argument("--cluster", action="store_true")
    parser.add_argument("--nice", type=int, default=0, help="the single node's nice increment")
    args = parser.parse_args()
    cluster(args) if args.cluster else single(args)


if __name__ == "__main__":
    main()
