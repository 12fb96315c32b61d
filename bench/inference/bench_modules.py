"""Print per-module latency per exam on CPU for the clinical modules (synthetic exams; real HC18
heads for fetal biometry)."""

from __future__ import annotations

import argparse
import statistics
import time

from sonobridge.inference.modules import ModuleFrame, load_clinical_modules
from sonobridge.inference.runtime.providers import SessionConfig
from sonobridge.lab import hc18
from sonobridge.lab.held_out import Recipe, cases

EXAMS = {
    "carotid-imt": ("carotid", 384),
    "kidney": ("kidney", 256),
    "focal-lesions": ("thyroid", 256),
    "fetal-biometry": ("obstetric", 800),
}


def _hc18_exams(count: int, frames: int) -> list[list[ModuleFrame]] | None:
    """Return `count` exams of `frames` HC18 development images each (None without HC18)."""
    if not (hc18.DEFAULT_ROOT / "hc18.csv").exists():
        return None
    dev = hc18.splits(hc18.read_index())["development"]
    picked = hc18.subset(dev, count * frames)
    return [
        [im.frame(hc18.DEFAULT_ROOT) for im in picked[i * frames : (i + 1) * frames]]
        for i in range(count)
    ]


def main() -> None:
    """Time module.run on a few synthetic exams per module and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exams", type=int, default=6)
    parser.add_argument("--frames", type=int, default=8, help="frames per exam (cine sampling)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    config = SessionConfig(("CPUExecutionProvider",), intra_op_threads=args.threads)
    modules = load_clinical_modules(config)
    print(f"CPU, {args.threads} onnxruntime thread(s), {args.frames} frames per exam")
    print(
        f"{'module':<15} {'exam':<9} {'size':>5} {'p50 ms':>8} {'mean ms':>8} {'max ms':>8} "
        f"{'frames':>6} {'ms/frame':>9}"
    )
    for module in modules:
        exam_type, size = EXAMS[module.name]
        if exam_type == "obstetric":
            exams = _hc18_exams(args.exams, args.frames)
            if exams is None:
                print(f"{module.name:<15} skipped: no HC18 images at {hc18.DEFAULT_ROOT}")
                continue
        else:
            recipe = Recipe(
                (exam_type,),
                seed=4242,
                count=args.exams,
                size=size,
                n_frames=args.frames,
                fault_rate=0.0,
            )
            exams = [case.frames for case in cases(recipe)]
        module.run(exams[0])  # warm-up: session arenas, caches
        times, measured = [], []
        for frames in exams:
            t = time.perf_counter()
            out = module.run(frames)
            times.append((time.perf_counter() - t) * 1000)
            # The kidney module measures at most a few frames of a cine.
            measured.append(out.details.get("measured_frames", len(frames)))
        used = statistics.mean(measured)
        print(
            f"{module.name:<15} {exam_type:<9} {size:>5} {statistics.median(times):>8.1f} "
            f"{statistics.mean(times):>8.1f} {max(times):>8.1f} {used:>6.1f} "
            f"{statistics.mean(times) / max(used, 1):>9.1f}"
        )


if __name__ == "__main__":
    main()
