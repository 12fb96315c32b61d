"""Per-frame cost of image-quality versions (resize + model), interleaved, against a baseline.

`uv run python bench/inference/bench_quality_versions.py [--base 1.3.0] [--versions 1.4.0 1.5.0]`
Prints medians and ratios to the baseline measured in the same turns, with the load average.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from sonobridge.inference.imaging.preprocess import InputSpec, to_tensor
from sonobridge.inference.modules.common import MODELS_DIR


def _load(version: str) -> tuple[ort.InferenceSession, InputSpec]:
    folder = MODELS_DIR / "image-quality" / version
    opts = ort.SessionOptions()
    # One thread, as serving's CPU run slots use.
    opts.intra_op_num_threads = 1
    card = json.loads((folder / "card.json").read_text())
    session = ort.InferenceSession(
        str(folder / "model.onnx"), opts, providers=["CPUExecutionProvider"]
    )
    return session, InputSpec.from_card(card["input"])


def main() -> None:
    """Time each version on the same frames in interleaved turns and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="1.3.0")
    parser.add_argument("--versions", nargs="+", default=["1.4.0", "1.5.0"])
    parser.add_argument("--turns", type=int, default=15)
    args = parser.parse_args()
    # A typical cart frame: 800x540 grey.
    frame = np.random.default_rng(0).integers(0, 255, (540, 800), dtype=np.uint8)
    versions = [args.base, *args.versions]
    sessions = {v: _load(v) for v in versions}
    times: dict[str, list[float]] = {v: [] for v in versions}
    for session, spec in sessions.values():
        session.run(["probabilities"], {spec.name: to_tensor(frame, spec)})
    for _ in range(args.turns):
        for v, (session, spec) in sessions.items():
            start = time.perf_counter()
            session.run(["probabilities"], {spec.name: to_tensor(frame, spec)})
            times[v].append(time.perf_counter() - start)
    base = float(np.median(times[args.base]))
    for v in versions:
        median = float(np.median(times[v]))
        print(f"image-quality {v}: {1000 * median:.1f} ms/frame, {median / base:.2f}x {args.base}")
    print("loadavg", " ".join(Path("/proc/loadavg").read_text().split()[:3]))


if __name__ == "__main__":
    main()
