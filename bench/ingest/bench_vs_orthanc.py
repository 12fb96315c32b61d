"""Side by side: STOW-RS into Orthanc 1.10 and into SonoBridge's single node and cluster edition.

Each pair starts every system fresh, in turn (interleaved), and measures start-up to ready, idle
RSS of the serving process, 4 clients sending the same small pydicom US instances (0.22 MB, each
with its own SOP Instance UID), and 2 clients streaming 90-frame 640x480 RGB cines (83 MB) while
the server's RSS is sampled. It prints every run, then the medians and the ratios to Orthanc.

Orthanc 1.10.1 + its DICOMweb plugin come from Debian's packages, unpacked without root by
`deploy/local/install.sh orthanc` into the git-ignored cache; Orthanc binds every interface, so
it runs on loopback inside `unshare --net --map-root-user` with its clients in the same
namespace. The cluster edition needs Kafka, MinIO and PostgreSQL (started on demand, as the
tests do; export SONOBRIDGE_RUN_DIR to share them). Orthanc keeps its defaults (SQLite index,
synced storage); SonoBridge acknowledges each instance only after it is durable.

    uv run python bench/ingest/bench_vs_orthanc.py [--pairs 3] [--small 200] [--cines 4]
        [--systems orthanc,single,cluster] [--grpc-seconds 5] [--base DIR]

With --base DIR (another checkout, e.g. `git archive main | tar -x -C DIR`), a system named
with "@base" (cluster@base, single@base) runs that tree's code in its turn of each pair, so
before and after share one load. A system may end with settings for its services, each
"+NAME=VALUE" (cluster+DB__POOL_SIZE=10), to compare settings in one run.

Then, unless --grpc-seconds 0, it runs the serving pair, bench/inference/bench_grpc.py: the
image-quality model over gRPC with 1, 8 and 32 clients vs raw InferenceSession.run in-process.

Figures are ratios measured in the same run; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench" / "ingest"))
sys.path.insert(0, str(REPO / "tests"))

from bench_stow import FRAME_BYTES, _header  # noqa: E402

CACHE = Path(os.environ.get("SONOBRIDGE_CACHE", Path.home() / ".cache" / "sonobridge"))
ORTHANC_ROOT = CACHE / "orthanc-1.10.1" / "root"
SMALL_FILE = "examples_ybr_color.dcm"  # pydicom's US example, 0.22 MB
CINE_FRAMES = 90
OPERATOR = "nurse-east"  # an operator of the demo consortium


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _part(payload: bytes | Iterator[bytes], boundary: str) -> Iterator[bytes]:
    yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    if isinstance(payload, bytes):
        yield payload
    else:
        yield from payload
    yield f"\r\n--{boundary}--\r\n".encode()


def _small_instances(count: int) -> list[bytes]:
    """The pydicom US example with a fresh SOP Instance UID each, one study per run."""
    path = get_testdata_file(SMALL_FILE)
    assert path is not None, SMALL_FILE
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    out = []
    for _ in range(count):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


def _cine(frame: bytes, study: str) -> Iterator[bytes]:
    yield _header(CINE_FRAMES, study)
    for _ in range(CINE_FRAMES):
        yield frame


def _post(client: httpx.Client, url: str, payload: bytes | Iterator[bytes]) -> float:
    boundary = uuid.uuid4().hex
    started = time.perf_counter()
    response = client.post(
        url,
        content=_part(payload, boundary),
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
        },
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"STOW answered {response.status_code}: {response.text[:300]}")
    return elapsed


def _send(
    url: str, headers: dict[str, str], jobs: list[Any], clients: int, make: Callable[[Any], Any]
) -> tuple[float, list[float]]:
    """Send `jobs` from `clients` threads; return (elapsed s, per-request latencies)."""
    latencies: list[float] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        mine = []
        with httpx.Client(headers=headers, timeout=300) as client:
            for job in jobs[worker::clients]:
                mine.append(_post(client, url, make(job)))
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(work, range(clients)))
    return time.perf_counter() - started, latencies


def _workload(url: str, headers: dict[str, str], pid: int, args: argparse.Namespace) -> dict:
    """Run the small-instance and the cine load against one ready server; return the figures."""
    figures: dict[str, float] = {"idle_rss_mb": _rss_mb(pid)}
    small = _small_instances(args.small)
    with httpx.Client(headers=headers, timeout=60) as client:
        _post(client, url, small.pop())  # first-request costs out of the figures
    elapsed, lat = _send(url, headers, small, 4, lambda body: body)
    figures |= {
        "small_ips": len(small) / elapsed,
        "small_mbs": sum(map(len, small)) / elapsed / 1e6,
        "small_p50_ms": float(np.percentile(lat, 50) * 1000),
        "small_p99_ms": float(np.percentile(lat, 99) * 1000),
    }
    frame = np.random.default_rng(7).integers(0, 256, FRAME_BYTES, dtype=np.uint8).tobytes()
    study = generate_uid()
    before = peak = _rss_mb(pid)
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.05):
            peak = max(peak, _rss_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    elapsed, _ = _send(url, headers, list(range(args.cines)), 2, lambda _: _cine(frame, study))
    stop.set()
    sampler.join()
    size = len(_header(CINE_FRAMES, study)) + CINE_FRAMES * FRAME_BYTES
    figures |= {"cine_mbs": args.cines * size / elapsed / 1e6, "cine_growth_mb": peak - before}
    return figures


def _wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s")


@contextmanager
def orthanc_server() -> Iterator[tuple[int, str, float]]:
    """Inside a fresh network namespace: run Orthanc; yield its pid, STOW URL and ready seconds."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    binary = ORTHANC_ROOT / "usr" / "sbin" / "Orthanc"
    if not binary.exists():
        raise SystemExit(f"{binary} missing: run deploy/local/install.sh orthanc")
    with tempfile.TemporaryDirectory(prefix="bench-orthanc-") as tmp:
        config = {
            "Name": "bench",
            "StorageDirectory": f"{tmp}/storage",
            "IndexDirectory": f"{tmp}/index",
            "HttpPort": 8042,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [str(ORTHANC_ROOT / "usr/share/orthanc/plugins/libOrthancDicomWeb.so")],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        Path(tmp, "orthanc.json").write_text(json.dumps(config))
        libs = [ORTHANC_ROOT / "usr/lib/x86_64-linux-gnu", ORTHANC_ROOT / "usr/lib/orthanc"]
        env = {**os.environ, "LD_LIBRARY_PATH": ":".join(map(str, libs))}
        started = time.perf_counter()
        log = open(Path(tmp, "orthanc.log"), "wb")  # noqa: SIM115 - closed after the child
        proc = subprocess.Popen([binary, f"{tmp}/orthanc.json"], env=env, stdout=log, stderr=log)
        try:
            base = "http://127.0.0.1:8042"
            _wait_until(
                lambda: httpx.get(f"{base}/dicom-web/studies", timeout=1).status_code == 200,
                30,
                "Orthanc",
            )
            yield proc.pid, f"{base}/dicom-web/studies", time.perf_counter() - started
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()


def run_orthanc(args: argparse.Namespace) -> dict:
    """Inside a fresh network namespace: start Orthanc, load it, stop it."""
    with orthanc_server() as (pid, url, ready_s):
        time.sleep(args.settle)
        figures = _workload(url, {}, pid, args)
    return {"ready_s": ready_s, **figures}


@contextmanager
def demo_node(data_dir: Path) -> Iterator[tuple[Any, str]]:
    """Run a ready single node of the demo consortium; yield it and its STOW-RS URL."""
    from sonobridge.node.cli import wait_ready
    from sonobridge.node.consortium import demo_consortium
    from sonobridge.node.demo import node_settings_for
    from sonobridge.node.edition import NodePorts, SingleNode

    consortium = demo_consortium()
    node = SingleNode(
        data_dir,
        ports=NodePorts.ephemeral(),
        extra_settings=node_settings_for(consortium, data_dir),
    )
    node.start()
    try:
        wait_ready(node)
        yield node, consortium.token(node.issuer, OPERATOR)
    finally:
        node.stop()


def serve_single(data_dir: str) -> None:
    """Child process: run a single node and print its STOW URL and a token once ready."""
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with demo_node(Path(data_dir)) as (node, token):
        print(json.dumps({"ingest": node.urls()["ingest"], "token": token}), flush=True)
        stop.wait()


@contextmanager
def single_process(data_dir: str) -> Iterator[tuple[int, str, dict[str, str]]]:
    """Run a single node in its own process; yield its pid, STOW URL and auth headers."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-single", data_dir],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOG__LEVEL": "WARNING"},
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        headers = {"Authorization": f"Bearer {ready['token']}"}
        yield proc.pid, f"{ready['ingest']}/dicomweb/studies", headers
    finally:
        proc.terminate()
        proc.wait(60)


def run_single(args: argparse.Namespace) -> dict:
    """Start a single node in its own process, load it, stop it."""
    with tempfile.TemporaryDirectory(prefix="bench-single-") as tmp:
        started = time.perf_counter()
        with single_process(tmp) as (pid, url, headers):
            ready_s = time.perf_counter() - started
            time.sleep(args.settle)
            figures = _workload(url, headers, pid, args)
    return {"ready_s": ready_s, **figures}


@contextmanager
def local_servers() -> Iterator[dict[str, str]]:
    """Lease Kafka, MinIO and PostgreSQL as the test fixtures do (started on demand)."""
    from infra_fixtures import LocalServer, local_env

    servers = [LocalServer(name) for name in ("postgres", "minio", "kafka")]
    try:
        for server in servers:
            server.ensure_up()
        yield local_env()
    finally:
        for server in servers:
            server.release()


@contextmanager
def _cluster(tmp: Path) -> Iterator[Any]:
    from sonobridge.node.cluster import ClusterEdition, Infra
    from sonobridge.node.consortium import demo_consortium

    with local_servers() as env:
        infra = Infra.from_env(env)
        edition = ClusterEdition.ephemeral(
            tmp, infra, demo_consortium(), deployment=f"vs{uuid.uuid4().hex[:8]}"
        )
        edition.extra_env["LOG__LEVEL"] = "WARNING"
        edition.prepare(fresh=True)
        try:
            yield edition
        finally:
            edition.stop()
            _clean(infra, edition)


def _clean(infra: Any, edition: Any) -> None:
    """Drop what one cluster run left on the shared servers: its objects and databases."""
    from sqlalchemy import create_engine

    from sonobridge.common.db import drop_database
    from sonobridge.common.objects.minio import MinioObjectStore

    store = MinioObjectStore(
        infra.minio, infra.minio_access_key, infra.minio_secret_key, edition.bucket
    )
    for key in list(store.list("")):
        store.delete(key)
    admin = create_engine(infra.pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for service in ("ingest", "inference", "reporting", "maintenance"):
            name = edition.database(service)
            drop_database(conn, name)
    admin.dispose()


def run_cluster(args: argparse.Namespace) -> dict:
    """Start the cluster edition (four processes), load its ingest, stop it."""
    from sonobridge.node.consortium import demo_consortium
    from sonobridge.node.issuer import issuer_for

    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp, _cluster(Path(tmp)) as ed:
        started = time.perf_counter()
        ed.start()
        ready_s = time.perf_counter() - started  # all four services, the JWKS server first
        time.sleep(args.settle)
        pid = ed.running("ingest")
        token = demo_consortium().token(issuer_for(Path(tmp)), OPERATOR)
        headers = {"Authorization": f"Bearer {token}"}
        figures = _workload(f"{ed.urls()['ingest']}/dicomweb/studies", headers, pid, args)
    return {"ready_s": ready_s, **figures}


ROWS = (
    ("small_ips", "small US instances, 4 clients: instances/s"),
    ("small_mbs", "  same, MB/s"),
    ("small_p50_ms", "  same, p50 ms per request"),
    ("small_p99_ms", "  same, p99 ms per request"),
    ("cine_mbs", "90-frame cines, 2 clients: MB/s"),
    ("cine_growth_mb", "  memory growth during the cines, MB"),
    ("idle_rss_mb", "idle RSS of the ingesting process, MB"),
    ("ready_s", "start-up to ready, s"),
)


MEMBERS = ("proto", "lab/src", "services/common/src", "services/ingest/src")
MEMBERS += ("services/inference/src", "services/reporting/src", "services/maintenance/src")
MEMBERS += ("services/node/src",)


def _child_run(spec: str, args: argparse.Namespace) -> dict:
    system, *settings = spec.split("+")
    system, _, tree = system.partition("@")
    # The cluster edition's services and the single node inherit the child's environment.
    env = dict(os.environ) | dict(setting.split("=", 1) for setting in settings)
    if tree:
        if not args.base:
            raise SystemExit(f"{system}@{tree} needs --base DIR")
        # Ahead of the editable installs' paths, so the other tree's packages win, in the
        # child and in every service process it starts.
        env["PYTHONPATH"] = os.pathsep.join(str(Path(args.base) / m) for m in MEMBERS)
    argv = [sys.executable, __file__, "--run", system, "--small", str(args.small)]
    argv += ["--cines", str(args.cines), "--settle", str(args.settle)]
    if system == "orthanc":
        if shutil.which("unshare") is None:
            raise SystemExit("unshare (util-linux) is needed to confine Orthanc to loopback")
        argv = ["unshare", "--net", "--map-root-user", *argv]
    out = subprocess.run(argv, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{system} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run interleaved pairs and print every run, the medians and the ratios to Orthanc."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--small", type=int, default=200, help="small instances per run")
    parser.add_argument("--cines", type=int, default=4, help="cines per run")
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds before RSS")
    parser.add_argument("--systems", default="orthanc,single,cluster")
    parser.add_argument(
        "--grpc-seconds", type=float, default=5.0, help="per row of the gRPC pair; 0 skips it"
    )
    parser.add_argument("--base", help="another checkout, for systems named with @base")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--serve-single", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_single:
        serve_single(args.serve_single)
        return
    if args.run:
        runner = {"orthanc": run_orthanc, "single": run_single, "cluster": run_cluster}
        print(json.dumps(runner[args.run](args)))
        return
    systems = args.systems.split(",")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    runs: dict[str, list[dict]] = {s: [] for s in systems}
    for pair in range(args.pairs):
        for system in systems:
            runs[system].append(_child_run(system, args))
            shown = " ".join(f"{k}={v:.1f}" for k, v in runs[system][-1].items())
            load = os.getloadavg()[0]
            print(f"pair {pair + 1} {system:<12} {shown} (load {load:.2f})", flush=True)
        if "orthanc" in runs:
            # Per pair: Orthanc's own rate swings between pairs on a shared machine.
            base = runs["orthanc"][-1]
            ratios = ", ".join(
                f"{s} {r[-1]['small_ips'] / base['small_ips']:.2f}x ips, "
                f"{r[-1]['small_p99_ms'] / base['small_p99_ms']:.2f}x p99"
                for s, r in runs.items()
                if s != "orthanc"
            )
            print(f"pair {pair + 1} small instances to Orthanc: {ratios}", flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    medians = {
        s: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for s, rows in runs.items()
    }
    header = f"{'median of ' + str(args.pairs) + ' interleaved runs':<42}"
    width = max(13, *(len(s) + 1 for s in systems))
    header += "".join(f"{s:>{width}}" for s in systems)
    others = [s for s in systems if s != "orthanc"]
    if "orthanc" in systems:
        header += "".join(f"{s + '/orth':>{width + 5}}" for s in others)
    print(header)
    for key, label in ROWS:
        line = f"{label:<42}" + "".join(f"{medians[s][key]:>{width}.1f}" for s in systems)
        if "orthanc" in systems:
            base = medians["orthanc"][key]
            line += "".join(
                f"{medians[s][key] / base if base else float('nan'):>{width + 4}.2f}x"
                for s in others
            )
        print(line)
    print("ratios are SonoBridge / Orthanc: above 1 is better for throughput, worse for the rest")
    if args.grpc_seconds > 0:
        # The serving pair: image quality over gRPC vs a plain InferenceSession, one process.
        grpc_bench = REPO / "bench" / "inference" / "bench_grpc.py"
        print(f"\n{grpc_bench.relative_to(REPO)} --seconds {args.grpc_seconds:g}", flush=True)
        subprocess.run(
            [sys.executable, str(grpc_bench), "--seconds", str(args.grpc_seconds)], check=True
        )
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
