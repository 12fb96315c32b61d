"""STOW-RS floor: what a bare Python server does on this machine, in the same turns as Orthanc.

Answers whether issue #18's small-instance targets (single node >= 1.2x Orthanc, cluster edition
>= 1.0x) are reachable by any Python server here. Each pair runs, one after the other with a
fresh server each:
  orthanc        Orthanc 1.10 with its DICOMweb plugin (bench_vs_orthanc's runner, inside
                 `unshare --net` because it binds every interface)
  bare-1         stow_floor_app.py under uvicorn, 1 process: the part to a file (fsync, rename,
                 fsync the folder), one committed INSERT into SQLite (WAL, synchronous=FULL)
  bare-2         the same app in 2 uvicorn processes on one port (SO_REUSEPORT), one SQLite
                 file; "split" shows how many instances each process stored
  bare-minio-pg  the same app putting the part into the shared MinIO (minio client, as our
                 adapter) and inserting a row into the shared PostgreSQL (psycopg 3), 1 process
  bare-minio-pg-par  the same with the row's commit running while the PUT runs: what the
                 cluster's floor becomes if its two writes overlap instead of queueing
  single         SonoBridge's single node (optional, as bench_vs_orthanc runs it)
  cluster        SonoBridge's cluster edition (optional, as bench_vs_orthanc runs it)
The bare servers hold none of our code: no DICOM parsing, no token check, no event. Every system
gets bench_vs_orthanc's client: `_send`/`_post` from 4 threads, the pydicom US example (0.22 MB)
with fresh UIDs. Around the load it reads CPU seconds from /proc: the server's process tree, the
client (this process's threads) and, for systems on MinIO/PostgreSQL/Kafka, those servers' trees,
so the table shows who used the 2 cores. The stored rows are counted after each bare run.

    SONOBRIDGE_RUN_DIR=/work/main/var/local \\
    uv run python bench/ingest/stow_floor.py [--pairs 2] [--small 400]
        [--systems orthanc,bare-1,bare-2,bare-minio-pg,single,cluster] [--settle 1] [--base DIR]

bare-minio-pg and cluster lease Kafka/MinIO/PostgreSQL as the tests do (started on demand;
export SONOBRIDGE_RUN_DIR to share them). With --base DIR (another checkout, e.g. `git archive
main | tar -x -C DIR`), single@base and cluster@base run that tree's code in their turn of each
pair, so before and after share one load: under DIR/.venv's Python where DIR has one (`uv sync`
there, so its dependencies are its own), else on this environment with DIR's sources first.
Figures are ratios to Orthanc measured in the same run; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_vs_orthanc as bench  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
RUN_DIR = Path(os.environ.get("SONOBRIDGE_RUN_DIR", bench.REPO / "var" / "local"))


def _parents() -> dict[int, int]:
    """pid -> ppid of every process now running."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def _tree(roots: list[int]) -> list[int]:
    """The roots and all their descendants."""
    parents = _parents()
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(child for child, parent in parents.items() if parent == pid)
    return sorted(found)


def _cpu_s(roots: list[int]) -> float:
    """User + system CPU seconds of the roots' process trees, all threads."""
    total = 0
    for pid in _tree(roots):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that ended: its CPU is out of the figures
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def _load(
    url: str, headers: dict[str, str], servers: list[int], infra: list[int], count: int
) -> dict:
    """Warm up with one instance, send `count` from 4 clients; return the rate and who used CPU."""
    small = bench._small_instances(count + 1)
    with httpx.Client(headers=headers, timeout=60) as client:
        bench._post(client, url, small.pop())
    server0, infra0, client0 = _cpu_s(servers), _cpu_s(infra), time.process_time()
    elapsed, lat = bench._send(url, headers, small, 4, lambda body: body)
    server = _cpu_s(servers) - server0
    infra_s = _cpu_s(infra) - infra0 if infra else 0.0
    client = time.process_time() - client0
    return {
        "ips": count / elapsed,
        "p50_ms": float(np.percentile(lat, 50) * 1000),
        "p99_ms": float(np.percentile(lat, 99) * 1000),
        "server_cpu_ms": server / count * 1000,
        "infra_cpu_ms": infra_s / count * 1000,
        "client_cpu_ms": client / count * 1000,
        "server_cores": server / elapsed,
        "cores_busy": (server + infra_s + client) / elapsed,
    }


@contextmanager
def _bare_server(processes: int, env: dict[str, str]) -> Iterator[tuple[list[int], str]]:
    """Run stow_floor_app under uvicorn in `processes` processes; yield their pids and URL.

    Each process gets its own listening socket on one port (SO_REUSEPORT), so the kernel spreads
    the clients' connections over them; uvicorn --workers shares one socket instead, and in a
    trial here one worker accepted all 4 keep-alive connections.
    """
    sockets = []
    for _ in range(processes):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", sockets[0].getsockname()[1] if sockets else 0))
        sock.listen(128)
        sockets.append(sock)
    with tempfile.TemporaryDirectory(prefix="bench-floor-ready-") as ready:
        procs = [
            subprocess.Popen(
                [sys.executable, str(HERE / "stow_floor_app.py"), str(sock.fileno())],
                env={**os.environ, **env, "FLOOR_READY": ready},
                pass_fds=[sock.fileno()],
            )
            for sock in sockets
        ]
        url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/studies"
        for sock in sockets:
            sock.close()  # the children hold their copies
        try:
            bench._wait_until(lambda: _serving(procs, Path(ready)), 30, "bare servers")
            yield [proc.pid for proc in procs], url
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)


def _serving(procs: list[subprocess.Popen[bytes]], ready: Path) -> bool:
    """True once every process has started its app; an exited one fails the run."""
    for proc in procs:
        if proc.poll() is not None:
            raise RuntimeError(f"bare server exited with {proc.returncode}")
    return {p.name for p in ready.iterdir()} >= {str(proc.pid) for proc in procs}


def run_bare(processes: int, args: argparse.Namespace) -> dict:
    """A bare server on files + SQLite; check every instance got its row."""
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        (Path(tmp) / "objects").mkdir()
        index = Path(tmp) / "index.db"
        with sqlite3.connect(index) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE instances (key TEXT PRIMARY KEY, size INTEGER, pid INTEGER)")
        env = {"FLOOR_STORE": "file", "FLOOR_DIR": tmp}
        with _bare_server(processes, env) as (pids, url):
            time.sleep(args.settle)
            figures = _load(url, {}, pids, [], args.small)
        with sqlite3.connect(index) as conn:
            per_pid = [n for (n,) in conn.execute("SELECT count(*) FROM instances GROUP BY pid")]
        files = sum(1 for p in (Path(tmp) / "objects").iterdir() if not p.name.startswith("."))
    return figures | {"rows": sum(per_pid), "files": files, "split": sorted(per_pid)}


def _pidfile(component: str) -> int:
    return int((RUN_DIR / component / f"{component}.pid").read_text().strip())


def run_bare_minio_pg(args: argparse.Namespace, parallel: bool = False) -> dict:
    """The bare server on the shared MinIO and PostgreSQL; drop its bucket and table afterwards."""
    import psycopg
    from minio import Minio

    with bench.local_servers() as env:
        conninfo = _pg_conninfo(env)
        client = Minio(
            env["SONOBRIDGE_TEST_MINIO"],
            access_key=env["SONOBRIDGE_TEST_MINIO_ACCESS_KEY"],
            secret_key=env["SONOBRIDGE_TEST_MINIO_SECRET_KEY"],
            secure=False,
        )
        name = f"floor{uuid.uuid4().hex[:12]}"
        client.make_bucket(name)
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f"CREATE TABLE {name} (key TEXT PRIMARY KEY, size INTEGER, pid INTEGER)")
            infra = [_postmaster(conninfo), _pidfile("minio")]
            app_env = {
                "FLOOR_STORE": "minio",
                "FLOOR_MINIO": env["SONOBRIDGE_TEST_MINIO"],
                "FLOOR_MINIO_KEYS": env["SONOBRIDGE_TEST_MINIO_ACCESS_KEY"]
                + ":"
                + env["SONOBRIDGE_TEST_MINIO_SECRET_KEY"],
                "FLOOR_BUCKET": name,
                "FLOOR_PG": conninfo,
                "FLOOR_TABLE": name,
                "FLOOR_PARALLEL": "1" if parallel else "0",
            }
            try:
                with _bare_server(1, app_env) as (pids, url):
                    time.sleep(args.settle)
                    figures = _load(url, {}, pids, infra, args.small)
                row = admin.execute(f"SELECT count(*) FROM {name}").fetchone()  # noqa: S608
                objects = [o.object_name for o in client.list_objects(name)]
            finally:
                admin.execute(f"DROP TABLE IF EXISTS {name}")
                for key in [o.object_name for o in client.list_objects(name)]:
                    client.remove_object(name, key)
                client.remove_bucket(name)
    return figures | {"rows": row[0] if row else 0, "files": len(objects)}


def run_orthanc(args: argparse.Namespace) -> dict:
    """Orthanc in this (fresh) network namespace."""
    with bench.orthanc_server() as (pid, url, _ready):
        time.sleep(args.settle)
        return _load(url, {}, [pid], [], args.small)


def run_single(args: argparse.Namespace) -> dict:
    """SonoBridge's single node, in its own process as bench_vs_orthanc runs it."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-floor-single-") as tmp,
        bench.single_process(tmp) as (pid, url, headers),
    ):
        time.sleep(args.settle)
        return _load(url, headers, [pid], [], args.small)


def run_cluster(args: argparse.Namespace) -> dict:
    """SonoBridge's cluster edition; its four services are the server, Kafka/MinIO/PG the infra."""
    from sonobridge.node.consortium import demo_consortium
    from sonobridge.node.edition import SERVICES
    from sonobridge.node.issuer import issuer_for

    with (
        tempfile.TemporaryDirectory(prefix="bench-floor-cluster-") as tmp,
        bench._cluster(Path(tmp)) as edition,
    ):
        edition.start()
        time.sleep(args.settle)
        pids = [pid for s in SERVICES if (pid := edition.running(s)) is not None]
        infra = [_pidfile("minio"), _pidfile("kafka"), _postmaster(_pg_conninfo(None))]
        token = demo_consortium().token(issuer_for(Path(tmp)), bench.OPERATOR)
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{edition.urls()['ingest']}/dicomweb/studies"
        return _load(url, headers, pids, infra, args.small)


def _pg_conninfo(env: dict[str, str] | None) -> str:
    """psycopg's URL of the shared PostgreSQL (env.sh prints SQLAlchemy's)."""
    from infra_fixtures import local_env

    url = (env or local_env())["SONOBRIDGE_TEST_PG_URL"]
    return url.replace("postgresql+psycopg://", "postgresql://")


def _postmaster(conninfo: str) -> int:
    """The pid of PostgreSQL's postmaster, the parent of every backend."""
    import psycopg

    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        return _parents()[row[0]]  # while the backend lives


RUNNERS: dict[str, Callable[[argparse.Namespace], dict]] = {
    "orthanc": run_orthanc,
    "bare-1": lambda args: run_bare(1, args),
    "bare-2": lambda args: run_bare(2, args),
    "bare-minio-pg": run_bare_minio_pg,
    "bare-minio-pg-par": lambda args: run_bare_minio_pg(args, parallel=True),
    "single": run_single,
    "cluster": run_cluster,
}


def _child_run(spec: str, args: argparse.Namespace) -> dict:
    system, _, tree = spec.partition("@")
    env, python = dict(os.environ), sys.executable
    if tree:
        if not args.base:
            raise SystemExit(f"{spec} needs --base DIR")
        own = Path(args.base) / ".venv" / "bin" / "python"
        if own.exists():
            # The other tree's own environment (`uv sync` there): its dependencies too.
            python = str(own)
        else:
            # Ahead of the editable installs' paths, so the other tree's packages win.
            env["PYTHONPATH"] = os.pathsep.join(str(Path(args.base) / m) for m in bench.MEMBERS)
    argv = [python, __file__, "--run", system, "--small", str(args.small)]
    argv += ["--settle", str(args.settle)]
    if system == "orthanc":
        if shutil.which("unshare") is None:
            raise SystemExit("unshare (util-linux) is needed to confine Orthanc to loopback")
        argv = ["unshare", "--net", "--map-root-user", *argv]
    out = subprocess.run(argv, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{spec} run failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


ROWS = (
    ("ips", "inst/s", "{:>9.1f}"),
    ("ratio", "/orthanc", "{:>8.2f}x"),
    ("p50_ms", "p50 ms", "{:>9.1f}"),
    ("p99_ms", "p99 ms", "{:>9.1f}"),
    ("server_cpu_ms", "srv cpu ms/i", "{:>13.2f}"),
    ("infra_cpu_ms", "infra cpu ms/i", "{:>15.2f}"),
    ("client_cpu_ms", "cli cpu ms/i", "{:>13.2f}"),
    ("server_cores", "srv cores", "{:>10.2f}"),
    ("cores_busy", "all cores", "{:>10.2f}"),
)


def _table(title: str, rows: dict[str, dict[str, float]]) -> None:
    print(title)
    print(f"{'system':<18}" + "".join(f"{label:>{len(fmt.format(0))}}" for _, label, fmt in ROWS))
    for system, figures in rows.items():
        print(f"{system:<18}" + "".join(fmt.format(figures[key]) for key, _, fmt in ROWS))


def main() -> None:
    """Run interleaved pairs; print every run, then the medians with ratios to Orthanc."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--small", type=int, default=400, help="small instances per run")
    parser.add_argument("--settle", type=float, default=1.0, help="idle seconds before the load")
    parser.add_argument("--systems", default="orthanc,bare-1,bare-2,bare-minio-pg,single")
    parser.add_argument("--base", help="another checkout, for systems named with @base")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(RUNNERS[args.run](args)))
        return
    systems = args.systems.split(",")
    unknown = {s.partition("@")[0] for s in systems} - set(RUNNERS)
    if unknown:
        raise SystemExit(f"unknown systems {sorted(unknown)}; known: {', '.join(RUNNERS)}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    runs: dict[str, list[dict]] = {s: [] for s in systems}
    for pair in range(args.pairs):
        for system in systems:
            figures = _child_run(system, args)
            runs[system].append(figures)
            shown = " ".join(
                f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
            )
            print(f"pair {pair + 1} {system:<17} {shown} (load {os.getloadavg()[0]:.2f})")
        if "orthanc" in runs:
            base = runs["orthanc"][-1]["ips"]
            for rows in runs.values():
                rows[-1]["ratio"] = rows[-1]["ips"] / base
            _table(f"pair {pair + 1}", {s: r[-1] for s, r in runs.items()})
        sys.stdout.flush()
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    keys = [key for key, _, _ in ROWS if key != "ratio"]
    medians = {
        s: {k: statistics.median(r[k] for r in rows) for k in keys} for s, rows in runs.items()
    }
    for figures in medians.values():
        figures["ratio"] = (
            figures["ips"] / medians["orthanc"]["ips"] if "orthanc" in medians else float("nan")
        )
    _table(
        f"median of {args.pairs} interleaved runs (ratio: median inst/s over Orthanc's)", medians
    )
    print("cpu ms/i: CPU milliseconds per instance of the server's process tree, of the servers")
    print("it stores into (MinIO, PostgreSQL, Kafka) and of the 4-thread client; srv cores: the")
    print("server's CPU seconds per second of load (a 1-process Python server holding the GIL")
    print("tops out near 1.0); all cores: server + infra + client, out of", os.cpu_count())


if __name__ == "__main__":
    main()
