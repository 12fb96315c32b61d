"""Count the single node's CPU per small STOW-RS instance, layer by layer.

Starts ingest in this process on the single node's adapters, sends pydicom's 0.22 MB US example
with fresh UIDs one request at a time from a client in another process (so the client's CPU
is not counted), samples this process with `py-spy record --rate 1000` and assigns each
sample to the first layer found walking from the leaf frame towards the root. With one
request in flight, samples / instances is milliseconds of CPU per instance. It also prints the
process's CPU seconds per instance (every thread, C code included) and the load average.
`--base DIR` runs another checkout's tree (e.g. `git archive main`) in turns with this one.
Figures, never a pass/fail:

    uv run python bench/ingest/stow_layers.py [--instances 200] [--pairs 1] [--base DIR]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MEMBERS = ("proto", "lab/src", "services/common/src", "services/ingest/src")

# (layer, pattern on "function (file)"), tried in order on each frame from the leaf up.
LAYERS: list[tuple[str, str]] = [
    ("auth / JWT", r"/jwt/|/auth\.py|cryptography|/access\.py|principal"),
    ("multipart parse", r"multipart\.py"),
    ("spool (body to temp file)", r"/spool\.py|tempfile\.py"),
    ("pydicom parse", r"/pydicom/"),
    ("validation", r"validation\.py|/dicomfile\.py"),
    ("group commit", r"group_commit\.py"),
    ("object write + fsync", r"/objects/|fsync"),
    ("outbox / event", r"delivery\.py|/messages\.py|events\.py|protobuf"),
    ("SQL (SQLAlchemy + SQLite)", r"sqlalchemy|sqlite"),
    ("ingest handler / repository", r"/ingest/handlers/|/repository\.py|/rows\.py"),
    ("STOW route + response", r"stow\.py|/views\.py|json/"),
    ("HTTP server (uvicorn/h11)", r"uvicorn|h11|httptools"),
    ("ASGI framework (starlette/fastapi)", r"starlette|fastapi|pydantic"),
    (
        "event loop / thread hand-off",
        r"asyncio|anyio|concurrent/futures|threading\.py|selectors|handoff\.py",
    ),
]

CLIENT = """
import sys, json, time
sys.path.insert(0, sys.argv[1])
from bench_vs_orthanc import _post, _small_instances
import httpx
url, token, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
bodies = _small_instances(count + 8)
with httpx.Client(headers={"Authorization": "Bearer " + token}, timeout=120) as client:
    for body in bodies[:8]:
        _post(client, url, body)
    print("warm", flush=True)
    sys.stdin.readline()
    lat = [_post(client, url, body) for body in bodies[8:]]
print(json.dumps(lat), flush=True)
"""


def _layer(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in LAYERS:
            if re.search(pattern, frame):
                return name
    return "other: " + frames[-1].split(" (")[0] if frames else "other"


@contextlib.contextmanager
def _ingest_alone(tmp: Path) -> Iterator[tuple[str, str]]:
    """Ingest alone on the single node's adapters; yield (STOW URL, token)."""
    sys.path.insert(0, str(REPO / "tests"))
    from ingest.ingest_support import running_ingest

    from sonobridge.common.auth import LocalIssuer

    issuer = LocalIssuer("bench", audience="sonobridge")
    with running_ingest(tmp, issuer, dimse_enabled=False) as ingest:
        yield f"{ingest.base_url}/dicomweb/studies", ingest.token(roles=("service",))


@contextlib.contextmanager
def _whole_node(tmp: Path) -> Iterator[tuple[str, str]]:
    """The whole single node (four services, one process) as the benchmark runs it."""
    sys.path.insert(0, str(REPO / "bench" / "ingest"))
    from bench_vs_orthanc import demo_node

    with demo_node(tmp) as (node, token):
        yield f"{node.urls()['ingest']}/dicomweb/studies", token


def _server(args: argparse.Namespace) -> None:
    """Run ingest here, drive it from a client process, print the per-layer table as JSON."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    running = _whole_node if args.scope == "node" else _ingest_alone
    with (
        tempfile.TemporaryDirectory(prefix="stow-layers-") as tmp,
        running(Path(tmp)) as (url, token),
    ):
        client = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CLIENT,
                str(REPO / "bench" / "ingest"),
                url,
                token,
                str(args.instances),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdin and client.stdout
        assert client.stdout.readline().strip() == "warm"
        raw = Path(tmp) / "profile.txt"
        recorder = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(os.getpid()),
                "--format",
                "raw",
                "--rate",
                "1000",
                "--nonblocking",
                "--gil",
                "--output",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.5)  # py-spy attaches
        load = os.getloadavg()[0]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        client.stdin.write("go\n")
        client.stdin.flush()
        latencies = json.loads(client.stdout.readline())
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        client.wait(60)
        recorder.send_signal(signal.SIGINT)
        recorder.wait(60)
        samples = raw.read_text()
    layers: collections.Counter[str] = collections.Counter()
    dump = open(args.raw, "w") if args.raw else None  # noqa: SIM115
    for line in samples.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f]
        if any("stow_layers.py" in f for f in frames):
            continue  # this script's own main thread, waiting on the client
        if dump is not None:
            dump.write(line + "\n")
        layers[_layer(frames)] += int(count)
    if dump is not None:
        dump.close()
    n = args.instances
    latencies.sort()
    print(
        json.dumps(
            {
                "cpu_ms": 1000 * cpu / n,
                "p50_ms": 1000 * latencies[n // 2],
                "ips": n / wall,
                "load": [load, os.getloadavg()[0]],
                "layers": {k: v / n for k, v in layers.items()},
            }
        )
    )


def main() -> None:
    """Run this tree (and --base's) in turns; print the per-layer ms per instance side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--base", type=Path, help="another checkout to run as 'base'")
    parser.add_argument(
        "--scope",
        choices=("node", "ingest"),
        default="node",
        help="the whole single node as benchmarked, or ingest alone",
    )
    parser.add_argument("--raw", help="with --server: keep py-spy's raw samples here")
    parser.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server:
        _server(args)
        return
    trees = ([("base", args.base)] if args.base else []) + [("this", REPO)]
    runs: dict[str, list[dict]] = {name: [] for name, _ in trees}
    for _ in range(args.pairs):
        for name, tree in trees:
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(str(tree / m) for m in MEMBERS)
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--server",
                    "--instances",
                    str(args.instances),
                    "--scope",
                    args.scope,
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            result = json.loads(out.strip().splitlines()[-1])
            runs[name].append(result)
            print(
                f"{name}: {result['ips']:.1f} inst/s (1 client), p50 {result['p50_ms']:.1f} ms, "
                f"process CPU {result['cpu_ms']:.1f} ms/instance, load {result['load']}",
                flush=True,
            )

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    names = sorted({k for rs in runs.values() for r in rs for k in r["layers"]})
    table = {
        name: {k: median([r["layers"].get(k, 0.0) for r in rs]) for k in names}
        for name, rs in runs.items()
    }
    order = sorted(names, key=lambda k: -table["this"][k])
    heads = list(runs)
    print("\nCPU ms per instance by layer (py-spy, 1000 Hz, median of pairs)")
    print(f"{'layer':44s}" + "".join(f"{h:>10s}" for h in heads))
    for k in order:
        if max(table[h][k] for h in heads) >= 0.05:
            print(f"{k[:44]:44s}" + "".join(f"{table[h][k]:10.2f}" for h in heads))
    print(f"{'sampled total':44s}" + "".join(f"{sum(table[h].values()):10.2f}" for h in heads))
    print(
        f"{'process CPU (all threads, C included)':44s}"
        + "".join(f"{median([r['cpu_ms'] for r in runs[h]]):10.2f}" for h in heads)
    )


if __name__ == "__main__":
    main()
