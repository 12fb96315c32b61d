"""CPU per small STOW-RS instance of reading, checking and rendering its header, before vs after.

Times what ingest does with each spooled instance before it is stored, the STOW handler's
`_validate` (size check; `read_instance`: parse, pixel layout, DICOM JSON, description;
`check_description`; the metadata's `json.dumps`), on pydicom's 0.22 MB US example with fresh
UIDs (one file each, as the benchmarks send), in the process's CPU time. With `--base DIR` the
other checkout's code runs in turns with this tree's, each in its own interpreter (DIR/.venv's
Python where it has one), so both share one load. Figures, never a pass/fail:

    uv run python bench/ingest/parse_cost.py [--instances 300] [--rounds 5] [--pairs 3]
        [--base DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _files(folder: Path, count: int) -> list[Path]:
    """Write `count` copies of the US example, each with its own SOP Instance UID."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_vs_orthanc import _small_instances

    paths = []
    for n, data in enumerate(_small_instances(count)):
        path = folder / f"{n}.dcm"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _run(folder: Path, rounds: int) -> None:
    """Time the header step over the files in `folder`; print µs of CPU per instance."""
    from types import SimpleNamespace

    from sonobridge.ingest.adapters.codec import PydicomCodec
    from sonobridge.ingest.handlers.instances import _validate

    deps = SimpleNamespace(codec=PydicomCodec(), max_instance_bytes=1 << 30)
    spooled = [SimpleNamespace(path=p, size=p.stat().st_size) for p in sorted(folder.glob("*.dcm"))]
    for one in spooled[:50]:  # warm: imports, caches
        _validate(deps, one)  # type: ignore[arg-type]
    best = []
    for _ in range(rounds):
        started = time.process_time()
        for one in spooled:
            _validate(deps, one)  # type: ignore[arg-type]
        best.append((time.process_time() - started) / len(spooled) * 1e6)
    print(json.dumps({"min_us": min(best), "median_us": sorted(best)[len(best) // 2]}))


def _measure(tree: Path, folder: Path, rounds: int) -> dict[str, float]:
    python = tree / ".venv" / "bin" / "python"
    command = [str(python if python.exists() else sys.executable), str(Path(__file__).resolve())]
    env = dict(os.environ, PYTHONPATH=str(tree / "services/ingest/src"))
    done = subprocess.run(
        [*command, "--run", str(folder), "--rounds", str(rounds)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    """Run this tree (and --base's) in turns; print µs of CPU per instance side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--base", type=Path, help="another checkout to run in turns")
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        _run(args.run, args.rounds)
        return
    trees = [("this", REPO)] + ([("base", args.base.resolve())] if args.base else [])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _files(folder, args.instances)
        for pair in range(1, args.pairs + 1):
            for name, tree in trees if pair % 2 else trees[::-1]:
                figures = _measure(tree, folder, args.rounds)
                print(
                    f"pair {pair} {name:5s} header step CPU per instance: "
                    f"min {figures['min_us']:.0f} µs, median {figures['median_us']:.0f} µs "
                    f"(load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
