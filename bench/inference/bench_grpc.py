"""Benchmark: raw onnxruntime vs the service through gRPC, with 1, 8 and 32 clients.

Starts the real service (single-node adapters in a temp dir, CPU provider unless told
otherwise) and, for each client count, measures a pair back to back: as many threads calling
InferenceSession.run on one in-process session with one frame each, then as many gRPC clients
sending the same frames as Infer tensor requests. Prints frames/s, p50/p99, served/raw and the
p50 the service adds; all measured in this one run, pairs interleaved.

    uv run python bench/inference/bench_grpc.py [--model image-quality] [--seconds 5] [--pairs 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort

from sonobridge.api.inference.v1 import inference_pb2, inference_pb2_grpc
from sonobridge.common.auth import LocalIssuer
from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.db import create_db_engine
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.common.objects.ports import read_all
from sonobridge.common.settings import GrpcSettings, HttpSettings
from sonobridge.inference.bootstrap import build
from sonobridge.inference.entrypoints.grpc_server import array_to_tensor
from sonobridge.inference.imaging.preprocess import to_tensor
from sonobridge.inference.settings import InferenceSettings, Settings
from sonobridge.lab.synthetic import generate_frame


def raw_batched(model: bytes, x: np.ndarray, seconds: float, threads: int, batch: int) -> float:
    """Frames/s of a plain session fed whole batches (the ceiling micro-batching aims at)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    xb = np.resize(x, (batch, *x.shape[1:]))
    sess.run(None, {"image": xb})
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sess.run(None, {"image": xb})
        n += batch
    return n / (time.perf_counter() - t0)


def concurrently(
    call: Callable[[int], object], clients: int, seconds: float
) -> tuple[float, float, float, float]:
    """(calls/s, p50 ms, p99 ms, process CPU ms per call) of `clients` threads for `seconds`.

    CPU per call counts every thread of this process (the service and its gRPC clients too):
    on a loaded machine the scheduler shares time per thread, so calls/s mostly measures how
    many threads a side runs, while CPU per call is what the side costs when CPU-bound.
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
    workers = [threading.Thread(target=caller, args=(i,)) for i in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return (
        len(lat) / elapsed,
        np.percentile(lat, 50) * 1000,
        np.percentile(lat, 99) * 1000,
        cpu / len(lat) * 1000,
    )


def raw_concurrent(
    model: bytes, x: np.ndarray, clients: int, seconds: float, threads: int
) -> tuple[float, float, float, float]:
    """(frames/s, p50, p99, CPU ms per frame) of `clients` threads calling one plain session."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    sess.run(None, {"image": x[:1]})
    return concurrently(
        lambda j: sess.run(None, {"image": x[j % len(x) : j % len(x) + 1]}), clients, seconds
    )


def served(
    target: str, token: str, name: str, requests: list, clients: int, seconds: float
) -> tuple[float, float, float, float]:
    """Return (frames/s, p50, p99, CPU ms per frame) for `clients` concurrent callers over gRPC."""
    channel = grpc.insecure_channel(target)
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    md = [("authorization", f"Bearer {token}")]
    stub.Infer(requests[0], metadata=md)
    try:
        return concurrently(
            lambda j: stub.Infer(requests[j % len(requests)], metadata=md), clients, seconds
        )
    finally:
        channel.close()


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
    args = parser.parse_args()

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
        ),
    )
    store = LocalDirObjectStore(tmp / "objects")
    host = build(
        settings,
        bus=EmbeddedEventBus(tmp / "events.sqlite3"),
        store=store,
        engine=create_db_engine(f"sqlite:///{tmp / 'inference.sqlite3'}"),
        verifier=issuer.verifier(),
    )
    host.start()
    try:
        model = host.deps.models.get(args.model)
        frames = np.stack([generate_frame(500 + i).image for i in range(32)])
        x = to_tensor(frames, model.input_spec)
        requests = [
            inference_pb2.InferRequest(
                model_name=args.model,
                tensors=inference_pb2.TensorInputs(
                    tensors=[array_to_tensor(model.input_spec.name, x[i : i + 1])]
                ),
            )
            for i in range(len(x))
        ]
        onnx = read_all(store, f"models/{args.model}/{model.card.version}/model.onnx")
        rawb = raw_batched(onnx, x, args.seconds, args.threads, args.max_batch)
        print(
            f"model {args.model} {model.card.version} on {model.provider}, "
            f"intra-op threads {args.threads}, max batch {args.max_batch}, "
            f"max wait {args.max_wait_ms} ms, {args.seconds:.0f} s per row"
        )
        print(f"raw onnxruntime, one caller, batch {args.max_batch} (the ceiling): {rawb:.1f} f/s")
        target = f"127.0.0.1:{host.grpc_port}"
        token = issuer.issue("bench", ["service"])
        # Each row is a pair measured back to back, `--pairs` times, in interleaved turns: raw
        # with as many threads calling one session as the service has clients, then the service.
        rows: dict[int, list[tuple[float, ...]]] = {c: [] for c in (1, 8, 32)}
        for _ in range(args.pairs):
            for clients, seen in rows.items():
                raw = raw_concurrent(onnx, x, clients, args.seconds, args.threads)
                svc = served(target, token, args.model, requests, clients, args.seconds)
                seen.append((*raw, *svc))
        print(f"pairs of raw InferenceSession.run and the service, median of {args.pairs}")
        print(
            "clients  raw f/s  raw p50  served f/s  served p50  served p99  "
            "served/raw  added p50 ms  raw CPU ms/f  served CPU ms/f  CPU raw/served"
        )
        for clients, seen in rows.items():
            m = [float(np.median([r[k] for r in seen])) for k in range(8)]
            print(
                f"{clients:7d} {m[0]:8.1f} {m[1]:8.2f} {m[4]:11.1f} {m[5]:11.2f} {m[6]:11.2f} "
                f"{m[4] / m[0]:11.2f} {m[5] - m[1]:13.2f} {m[3]:13.3f} {m[7]:16.3f} "
                f"{m[3] / m[7]:15.2f}"
            )
        print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        host.stop()


if __name__ == "__main__":
    main()
