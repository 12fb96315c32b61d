"""Benchmark: raw onnxruntime throughput vs the micro-batched runtime with 1, 8, 32 callers."""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
import onnxruntime as ort

from sonobridge.inference.imaging.preprocess import to_tensor
from sonobridge.inference.runtime.batcher import BatchPolicy
from sonobridge.inference.runtime.providers import SessionConfig
from sonobridge.inference.runtime.registry import (
    PACKAGED_MODELS_ROOT,
    ModelRegistry,
    packaged_models,
)
from sonobridge.lab.synthetic import generate_frame


def _raw(model_path: str, x: np.ndarray, seconds: float, batch: int, threads: int) -> float:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
    sess.run(None, {"image": x[:batch]})
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sess.run(None, {"image": x[:batch]})
        n += batch
    return n / (time.perf_counter() - t0)


async def _served(reg: ModelRegistry, name: str, x: np.ndarray, callers: int, seconds: float):
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def caller(i: int) -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await reg.infer(name, x[i % len(x) : i % len(x) + 1])
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(callers)))
    return len(lat) / (time.perf_counter() - t0), np.percentile(lat, 50), np.percentile(lat, 99)


async def main() -> None:
    """Print the comparison table."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="image-quality")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    reg = ModelRegistry(
        packaged_models(),
        SessionConfig(intra_op_threads=args.threads),
        BatchPolicy(max_batch_size=32, max_wait_ms=2, max_queue=1024),
    )
    model = await reg.load(args.model)
    frames = np.stack([generate_frame(i).image for i in range(32)])
    x = to_tensor(frames, model.input_spec)
    path = str(PACKAGED_MODELS_ROOT / "models" / args.model / model.card.version / "model.onnx")
    print(
        f"model {args.model} {model.card.version} provider {model.provider} threads {args.threads}"
    )
    raw1 = _raw(path, x, args.seconds, 1, args.threads)
    raw32 = _raw(path, x, args.seconds, 32, args.threads)
    print(f"raw onnxruntime batch=1 : {raw1:8.1f} frames/s")
    print(f"raw onnxruntime batch=32: {raw32:8.1f} frames/s")
    for callers in (1, 8, 32):
        tput, p50, p99 = await _served(reg, args.model, x, callers, args.seconds)
        print(
            f"runtime {callers:2d} callers: {tput:8.1f} frames/s  p50 {p50 * 1e3:6.2f} ms  "
            f"p99 {p99 * 1e3:6.2f} ms  ratio vs raw b=1 {tput / raw1:4.2f}  "
            f"vs raw b=32 {tput / raw32:4.2f}"
        )
    await reg.close()


if __name__ == "__main__":
    asyncio.run(main())
