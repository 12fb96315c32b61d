"""Benchmark: raw onnxruntime throughput vs the service through gRPC with 1, 8, 32 clients.

Starts the real service (single-node adapters in a temp dir, CPU provider unless told
otherwise), sends the same preprocessed frames as Infer tensor requests, and prints frames/s,
p50/p99 latency and the ratio service/raw, all measured in this one run.

    uv run python bench/inference/bench_grpc.py [--model image-quality] [--seconds 5]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
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


def raw_throughput(model: bytes, x: np.ndarray, seconds: float, threads: int) -> float:
    """Frames/s of a plain session fed one frame per call (what one client would see)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    sess.run(None, {"image": x[:1]})
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sess.run(None, {"image": x[n % len(x) : n % len(x) + 1]})
        n += 1
    return n / (time.perf_counter() - t0)


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


def served(
    target: str, token: str, name: str, requests: list, clients: int, seconds: float
) -> tuple[float, float, float]:
    """Return (frames/s, p50 ms, p99 ms) for `clients` concurrent callers over gRPC."""
    channel = grpc.insecure_channel(target)
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    md = [("authorization", f"Bearer {token}")]
    stub.Infer(requests[0], metadata=md)
    lat: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def caller(i: int) -> None:
        mine = []
        j = i
        while time.perf_counter() < stop:
            t = time.perf_counter()
            stub.Infer(requests[j % len(requests)], metadata=md)
            mine.append(time.perf_counter() - t)
            j += clients
        with lock:
            lat.extend(mine)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=caller, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    channel.close()
    return len(lat) / elapsed, np.percentile(lat, 50) * 1000, np.percentile(lat, 99) * 1000


def main() -> None:
    """Run the comparison and print one table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="image-quality")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads, both sides")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--providers", default="CPUExecutionProvider")
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
        raw1 = raw_throughput(onnx, x, args.seconds, args.threads)
        rawb = raw_batched(onnx, x, args.seconds, args.threads, args.max_batch)
        print(
            f"model {args.model} {model.card.version} on {model.provider}, "
            f"intra-op threads {args.threads}, max batch {args.max_batch}, "
            f"max wait {args.max_wait_ms} ms, {args.seconds:.0f} s per row"
        )
        print(f"raw onnxruntime, batch 1:            {raw1:9.1f} frames/s")
        print(f"raw onnxruntime, batch {args.max_batch:<3}:          {rawb:9.1f} frames/s")
        print(
            "clients  frames/s    p50 ms   p99 ms   service/raw(b1)  "
            f"service/raw(b{args.max_batch})"
        )
        target = f"127.0.0.1:{host.grpc_port}"
        token = issuer.issue("bench", ["service"])
        for clients in (1, 8, 32):
            fps, p50, p99 = served(target, token, args.model, requests, clients, args.seconds)
            print(
                f"{clients:7d} {fps:9.1f} {p50:9.2f} {p99:8.2f} {fps / raw1:16.2f} "
                f"{fps / rawb:16.2f}"
            )
    finally:
        host.stop()


if __name__ == "__main__":
    main()
