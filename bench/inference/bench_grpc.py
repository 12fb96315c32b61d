"""Benchmark: raw onnxruntime vs the service through gRPC, with 1, 8 and 32 clients.

Starts the real service in a child process (single-node adapters in a temp dir, CPU provider
unless told otherwise) and, for each client count, measures a pair back to back: as many
threads calling InferenceSession.run on one in-process session with one frame each, then as
many gRPC clients sending the same frames as Infer tensor requests. Prints frames/s, p50/p99,
the p50 the service adds and CPU per frame of raw, of the service process and of the bench's
own gRPC clients, apart; all measured in this one run, pairs interleaved. `--profile DIR`
records py-spy stacks of the service during the first pair's rows. `--base DIR` (a checkout
of another commit, e.g. `git archive main | tar -x -C DIR`) runs that tree's service too, in
turns with this one, so before and after share one run and one load. `--floor` adds a bare
grpcio sync server running the same session (no auth, metrics or checks; the service's worker
count) in the same turns: what grpcio's own per-call cost leaves of raw on this machine.
`--floor-stream` adds bare bidirectional streams on the same session: each client opens one
stream and sends frames one after another, waiting for each answer (ping-pong), on the bare
sync server (floor-s) and on a bare grpc.aio server running the model inline (floor-a);
`--pipeline K` also runs floor-a with K frames in flight per stream (floor-pK, whose p50 is the
time between answers, not a frame's latency). `--stream` (also on with `--floor-stream`) adds
the service's own InferStream (row `stream`: this tree's service, its grpc.aio stream port, one
stream per client, ping-pong) in the same turns.

    uv run python bench/inference/bench_grpc.py [--model image-quality] [--seconds 5] [--pairs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort

from sonobridge.api.inference.v1 import inference_pb2, inference_pb2_grpc
from sonobridge.common.auth import LocalIssuer
from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.db import create_db_engine
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.common.settings import GrpcSettings, HttpSettings
from sonobridge.inference.bootstrap import build
from sonobridge.inference.domain.model_card import ModelCard
from sonobridge.inference.entrypoints.grpc_server import array_to_tensor
from sonobridge.inference.imaging.preprocess import InputSpec, to_tensor
from sonobridge.inference.runtime.registry import packaged_models
from sonobridge.inference.settings import InferenceSettings, Settings
from sonobridge.lab.synthetic import generate_frame

sys.path.insert(0, str(Path(__file__).resolve().parent))
# A sibling script, not a package: found through the path entry above.
from bench_idle import code_env


def raw_batched(
    model: bytes, x: np.ndarray, seconds: float, threads: int, batch: int
) -> tuple[float, float]:
    """(frames/s, CPU ms per frame) of a plain session fed whole batches by one caller.

    What micro-batching could reach: when batch N costs each frame less CPU than batch 1,
    frames waiting together are cheaper run as one.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    xb = np.resize(x, (batch, *x.shape[1:]))
    sess.run(None, {"image": xb})
    n, t0, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        sess.run(None, {"image": xb})
        n += batch
    return n / (time.perf_counter() - t0), (time.process_time() - cpu0) / n * 1000


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) another process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def concurrently(
    call: Callable[[int], object], clients: int, seconds: float, server: int | None = None
) -> tuple[float, ...]:
    """(calls/s, p50 ms, p99 ms, CPU ms per call of this process[, of `server`]).

    On a loaded machine the scheduler shares time per thread, so calls/s mostly measures how
    many threads a side runs; CPU per call is what a side costs when CPU-bound. The service
    runs in its own process, so its CPU is counted apart from the clients calling it.
    """
    lat: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def caller(i: int) -> None:
        mine, j = [], i
        while time.perf_counter() < stop:
            t = time.perf_counter()
            call(j)
            mine.append(time.perf_counter() - t)
            j += clients
        with lock:
            lat.extend(mine)

    t0, cpu0 = time.perf_counter(), time.process_time()
    other0 = process_cpu(server) if server else 0.0
    workers = [threading.Thread(target=caller, args=(i,)) for i in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    figures = (
        len(lat) / elapsed,
        np.percentile(lat, 50) * 1000,
        np.percentile(lat, 99) * 1000,
        cpu / len(lat) * 1000,
    )
    if server:
        return (*figures, (process_cpu(server) - other0) / len(lat) * 1000)
    return figures


def raw_concurrent(
    model: bytes, x: np.ndarray, clients: int, seconds: float, threads: int
) -> tuple[float, ...]:
    """(frames/s, p50, p99, CPU ms per frame) of `clients` threads calling one plain session."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    sess.run(None, {"image": x[:1]})
    return concurrently(
        lambda j: sess.run(None, {"image": x[j % len(x) : j % len(x) + 1]}), clients, seconds
    )


# The streaming method's path; bare servers register it by hand (no generated stub needed).
STREAM_METHOD = "/sonobridge.api.inference.v1.InferenceService/InferStream"


class FrameStream:
    """One bidirectional stream a caller sends frames on, `depth` in flight at most."""

    def __init__(self, channel: grpc.Channel, metadata: list[tuple[str, str]], depth: int) -> None:
        self._sends: queue.SimpleQueue = queue.SimpleQueue()
        call = channel.stream_stream(
            STREAM_METHOD,
            request_serializer=inference_pb2.InferRequest.SerializeToString,
            response_deserializer=inference_pb2.InferResponse.FromString,
        )
        self._answers = call(iter(self._sends.get, None), metadata=metadata)
        self._depth, self._in_flight = depth, 0

    def __call__(self, request: inference_pb2.InferRequest) -> object:
        """Send a frame; once `depth` are in flight, wait for the oldest answer."""
        self._sends.put(request)
        self._in_flight += 1
        if self._in_flight < self._depth:
            return None
        self._in_flight -= 1
        return next(self._answers)

    def close(self) -> None:
        """End the stream after reading the answers still in flight."""
        self._sends.put(None)
        for _ in self._answers:
            pass


def streamed(
    target: str,
    token: str,
    requests: list,
    clients: int,
    seconds: float,
    server: int,
    depth: int = 1,
) -> tuple[float, ...]:
    """As served(), but each client sends its frames on one stream, `depth` in flight."""
    channel = grpc.insecure_channel(target)
    md = [("authorization", f"Bearer {token}")] if token else []
    streams = [FrameStream(channel, md, depth) for _ in range(clients)]
    try:
        for s in streams:
            for k in range(depth):
                s(requests[k % len(requests)])
        # concurrently() gives caller i the indices i, i + clients, ...: its own stream.
        return concurrently(
            lambda j: streams[j % clients](requests[j % len(requests)]), clients, seconds, server
        )
    finally:
        for s in streams:
            s.close()
        channel.close()


def served(
    target: str, token: str, requests: list, clients: int, seconds: float, server: int
) -> tuple[float, ...]:
    """(frames/s, p50, p99, client CPU ms/f, service CPU ms/f) for `clients` gRPC callers."""
    channel = grpc.insecure_channel(target)
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    md = [("authorization", f"Bearer {token}")]
    stub.Infer(requests[0], metadata=md)
    try:
        return concurrently(
            lambda j: stub.Infer(requests[j % len(requests)], metadata=md),
            clients,
            seconds,
            server,
        )
    finally:
        channel.close()


def serve(args: argparse.Namespace) -> None:
    """Run the service in this process until stdin closes; print its port, token and model."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    issuer = LocalIssuer("bench")
    settings = Settings(
        data_dir=tmp,
        http=HttpSettings(port=0),
        grpc=GrpcSettings(port=0),
        log={"level": "WARNING"},
        inference=InferenceSettings(
            providers=args.providers,
            intra_op_threads=args.threads,
            max_batch_size=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            queue_size=1024,
            **({"grpc_max_workers": args.grpc_workers} if args.grpc_workers else {}),
        ),
    )
    host = build(
        settings,
        bus=EmbeddedEventBus(tmp / "events.sqlite3"),
        store=LocalDirObjectStore(tmp / "objects"),
        engine=create_db_engine(f"sqlite:///{tmp / 'inference.sqlite3'}"),
        verifier=issuer.verifier(),
    )
    host.start()
    try:
        model = host.deps.models.get(args.model)
        ready = {
            "port": host.grpc_port,
            "stream_port": host.streams.wait_bound(),
            # InferStream serves callers of one institution: the token names one.
            "token": issuer.issue("bench", ["service"], "bench-county"),
            "version": model.card.version,
            "provider": model.provider,
        }
        print(json.dumps(ready), flush=True)
        sys.stdin.read()
    finally:
        host.stop()


def floor_session(args: argparse.Namespace) -> Callable[[inference_pb2.InferRequest], object]:
    """The bare servers' whole handler: decode one tensor, run the session, encode outputs."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(
        packaged_models().get_bytes(f"models/{args.model}/{args.version}/model.onnx"),
        opts,
        providers=["CPUExecutionProvider"],
    )
    names = [o.name for o in sess.get_outputs()]

    def infer(request: inference_pb2.InferRequest) -> inference_pb2.InferResponse:
        t = request.tensors.tensors[0]
        x = np.frombuffer(t.data, dtype=np.float32).reshape(tuple(t.shape))
        outs = sess.run(names, {t.name: x})
        return inference_pb2.InferResponse(
            model_name=request.model_name,
            outputs=[array_to_tensor(n, o) for n, o in zip(names, outs, strict=True)],
        )

    return infer


def stream_handler(behavior: Callable[..., object]) -> grpc.GenericRpcHandler:
    """Register `behavior` as the InferStream method, without a generated stub."""
    method = grpc.stream_stream_rpc_method_handler(
        behavior,
        request_deserializer=inference_pb2.InferRequest.FromString,
        response_serializer=inference_pb2.InferResponse.SerializeToString,
    )
    service, name = STREAM_METHOD.rsplit("/", 1)
    return grpc.method_handlers_generic_handler(service.lstrip("/"), {name: method})


def serve_floor(args: argparse.Namespace) -> None:
    """Run a bare grpcio sync server on the model's session until stdin closes.

    No auth, metrics, admission or input checks, one frame per call as the service gets it:
    the least a unary gRPC call can cost here, so the service's rows read against it. Its
    InferStream answers each frame of a stream in turn; a stream holds a worker for its life,
    so the pool has one per client besides the service's count.
    """
    infer = floor_session(args)

    class Bare(inference_pb2_grpc.InferenceServiceServicer):  # type: ignore[misc]
        def Infer(  # noqa: N802
            self, request: inference_pb2.InferRequest, context: grpc.ServicerContext
        ) -> object:
            return infer(request)

        def InferStream(  # noqa: N802
            self, requests: Iterator[inference_pb2.InferRequest], context: object
        ) -> Iterator:
            for request in requests:
                yield infer(request)

    workers = args.grpc_workers or 2 * len(os.sched_getaffinity(0)) + 2
    streams = max(int(c) for c in args.clients.split(","))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers + streams))
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(Bare(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        ready = {"port": port, "token": "", "version": args.version, "provider": "CPU"}
        print(json.dumps(ready), flush=True)
        sys.stdin.read()
    finally:
        server.stop(None)


def serve_floor_aio(args: argparse.Namespace) -> None:
    """Run a bare grpc.aio server whose InferStream runs the model inline on the event loop."""
    infer = floor_session(args)

    async def infer_stream(requests: object, context: object) -> object:
        async for request in requests:  # type: ignore[attr-defined]
            yield infer(request)

    async def run() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((stream_handler(infer_stream),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        ready = {"port": port, "token": "", "version": args.version, "provider": "CPU"}
        print(json.dumps(ready), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await server.stop(None)

    asyncio.run(run())


@contextlib.contextmanager
def service_process(
    args: argparse.Namespace, tree: Path | None = None, mode: str = "--serve"
) -> Iterator[tuple[subprocess.Popen[str], dict]]:
    """Start `mode` in a child process (its CPU is its own), from `tree`'s code if given."""
    command = [sys.executable, __file__, mode, "--model", args.model]
    command += ["--threads", str(args.threads), "--max-batch", str(args.max_batch)]
    command += ["--max-wait-ms", str(args.max_wait_ms), "--providers", args.providers]
    command += ["--grpc-workers", str(args.grpc_workers), "--version", args.version or ""]
    command += ["--clients", args.clients]
    child = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=code_env(tree)
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line:
            raise RuntimeError("the service process exited before it was ready")
        yield child, json.loads(line)
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(60)


def profiled(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    """Start py-spy on the service for about `seconds`: stacks of the thread holding the GIL."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [spy, "record", "--pid", str(pid), "--format", "raw", "--threads", "--gil"]
    command += ["--duration", str(max(1, round(seconds))), "--rate", "500", "--output", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    """Run the comparison and print one table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="image-quality")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads, both sides")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--providers", default="CPUExecutionProvider")
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--grpc-workers", type=int, default=0, help="0: the service's default")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated client counts")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the service in the first pair; stacks go here"
    )
    parser.add_argument(
        "--base", type=Path, help="another checkout whose service runs in interleaved turns"
    )
    parser.add_argument(
        "--floor", action="store_true", help="also a bare grpcio server on the same session"
    )
    parser.add_argument(
        "--floor-stream",
        action="store_true",
        help="also bare streams, one per client: sync and grpc.aio servers",
    )
    parser.add_argument(
        "--stream", action="store_true", help="also the service's InferStream, one per client"
    )
    parser.add_argument(
        "--pipeline", type=int, default=0, help="also floor-a with this many frames in flight"
    )
    parser.add_argument(
        "--batches", default="1,2,4,8,32", help="batch sizes of the one-caller raw curve"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor-aio", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--version", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    if args.serve_floor:
        serve_floor(args)
        return
    if args.serve_floor_aio:
        serve_floor_aio(args)
        return

    trees: dict[str, Path | None] = {"this": None}
    if args.base:
        trees = {"base": args.base.resolve(), "this": None}
    with contextlib.ExitStack() as stack:
        services = {k: stack.enter_context(service_process(args, t)) for k, t in trees.items()}
        # The same model version the service serves, whatever the newest stored one is.
        args.version = next(iter(services.values()))[1]["version"]
        if args.stream or args.floor_stream:
            services["stream"] = services["this"]
        if args.floor or args.floor_stream:
            services["floor"] = stack.enter_context(service_process(args, None, "--serve-floor"))
        if args.floor_stream:
            services["floor-s"] = services["floor"]
            aio = stack.enter_context(service_process(args, None, "--serve-floor-aio"))
            services["floor-a"] = aio
            if args.pipeline > 1:
                services[f"floor-p{args.pipeline}"] = aio
        if args.floor_stream and not args.floor:
            del services["floor"]
        compare(args, services)


def compare(
    args: argparse.Namespace, services: dict[str, tuple[subprocess.Popen[str], dict]]
) -> None:
    """Measure raw then each service per client count, in interleaved turns; print the table."""
    source = packaged_models()
    version = next(iter(services.values()))[1]["version"]
    card = ModelCard.from_json(source.get_bytes(f"models/{args.model}/{version}/card.json"))
    spec = InputSpec.from_card(card.raw["input"])
    frames = np.stack([generate_frame(500 + i).image for i in range(32)])
    x = to_tensor(frames, spec)
    requests = [
        inference_pb2.InferRequest(
            model_name=args.model,
            tensors=inference_pb2.TensorInputs(tensors=[array_to_tensor(spec.name, x[i : i + 1])]),
        )
        for i in range(len(x))
    ]
    onnx = source.get_bytes(f"models/{args.model}/{version}/model.onnx")
    provider = next(iter(services.values()))[1]["provider"]
    print(
        f"model {args.model} {version} on {provider}, intra-op threads {args.threads}, "
        f"max batch {args.max_batch}, max wait {args.max_wait_ms} ms, {args.seconds:g} s per row; "
        f"each service in its own process: {', '.join(services)}"
    )
    for batch in (int(b) for b in args.batches.split(",")):
        rate, cpu = raw_batched(onnx, x, min(args.seconds, 2.0), args.threads, batch)
        print(
            f"raw onnxruntime, one caller, batch {batch:2d}: {rate:7.1f} f/s, "
            f"{cpu:.3f} CPU ms/f, load {os.getloadavg()[0]:.1f}"
        )
    for label, (child, _) in services.items():
        # Relays and consumers poll while idle: CPU a service spends whether frames come or not.
        before, t0 = process_cpu(child.pid), time.perf_counter()
        time.sleep(2.0)
        idle = (process_cpu(child.pid) - before) / (time.perf_counter() - t0) * 1000
        print(f"{label} service idle: {idle:.1f} CPU ms/s")
    # Each row is measured back to back, `--pairs` times, in interleaved turns: raw with as
    # many threads calling one session as the service has clients, then each service.
    rows: dict[tuple[int, str], list[tuple[float, ...]]] = {}
    for turn in range(args.pairs):
        for clients in (int(c) for c in args.clients.split(",")):
            raw = raw_concurrent(onnx, x, clients, args.seconds, args.threads)
            for label, (child, ready) in services.items():
                spy = None
                if args.profile and turn == 0:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    out = args.profile / f"{label}-clients{clients}.txt"
                    spy = profiled(child.pid, out, args.seconds)
                    time.sleep(0.5)  # py-spy attaches
                target = f"127.0.0.1:{ready['port']}"
                if label == "stream":
                    target = f"127.0.0.1:{ready['stream_port']}"
                    svc = streamed(
                        target, ready["token"], requests, clients, args.seconds, child.pid
                    )
                elif label.startswith("floor-"):
                    # floor-s, floor-a: ping-pong; floor-pK: K frames in flight per stream.
                    depth = int(label[7:]) if label.startswith("floor-p") else 1
                    svc = streamed(
                        target, ready["token"], requests, clients, args.seconds, child.pid, depth
                    )
                else:
                    svc = served(target, ready["token"], requests, clients, args.seconds, child.pid)
                if spy is not None:
                    spy.wait(60)
                row = (*raw, *svc, float(os.getloadavg()[0]))
                rows.setdefault((clients, label), []).append(row)
    print(f"raw InferenceSession.run and each service back to back, median of {args.pairs}")
    print(
        "CPU ms/f: CPU per frame; raw counts its calling threads, the service its own process, "
        "clients the bench's gRPC stubs (they would run elsewhere)"
    )
    print(
        "clients code     raw f/s  raw p50  served f/s  served p50  served p99  added p50 ms  "
        "raw CPU ms/f  service CPU ms/f  client CPU ms/f  raw/service CPU  load"
    )
    for (clients, label), seen in rows.items():
        m = [float(np.median([r[k] for r in seen])) for k in range(len(seen[0]))]
        print(
            f"{clients:7d} {label:<8} {m[0]:8.1f} {m[1]:8.2f} {m[4]:11.1f} {m[5]:11.2f} "
            f"{m[6]:11.2f} {m[5] - m[1]:13.2f} {m[3]:13.3f} {m[8]:17.3f} {m[7]:16.3f} "
            f"{m[3] / m[8]:16.2f} {m[9]:5.1f}"
        )
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
