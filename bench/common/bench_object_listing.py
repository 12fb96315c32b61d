"""Benchmark: cost of a prefix listing on the local-directory store as the store grows.

Fills a store with N DICOM-like objects plus one tus upload's parts, then times
`list('uploads/<id>/')` (called twice per finished upload) with the old whole-store walk,
kept here as the baseline, and with the adapter's listing, in the same run. Usage:
    uv run python bench/common/bench_object_listing.py [--sizes 1000 50000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sonobridge.common.objects.localdir import _META_SUFFIX, LocalDirObjectStore

UPLOAD = "uploads/0f3c9a7e2b/"
PARTS = 8


def _walk_whole_store(store: LocalDirObjectStore, prefix: str) -> list[str]:
    """The listing before #18: walk every file in the store, keep those under the prefix."""
    base = store.root / "data"
    keys = []
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            if name.endswith(_META_SUFFIX):
                continue
            key = Path(dirpath, name).relative_to(base).as_posix()
            if key.startswith(prefix):
                keys.append(key)
    return sorted(keys)


def _prefix_listing(store: LocalDirObjectStore, prefix: str) -> list[str]:
    """The adapter's listing today."""
    return list(store.list(prefix))


def _fill(store: LocalDirObjectStore, count: int) -> None:
    """Write `count` objects as files directly (the layout put() makes, without its fsyncs)."""
    data = store.root / "data"
    for n in range(count):
        study, series = n // 200, (n // 20) % 10
        folder = data / "dicom" / f"1.2.826.{study}" / f"1.2.826.{study}.{series}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"1.2.826.{study}.{series}.{n}.dcm").write_bytes(b"DICM")
        Path(str(folder / f"1.2.826.{study}.{series}.{n}.dcm") + _META_SUFFIX).write_text("{}")
    parts = data / UPLOAD
    parts.mkdir(parents=True, exist_ok=True)
    for n in range(PARTS):
        (parts / f"part-{n:06d}").write_bytes(b"x")


def _timed_ms(
    listing: Callable[[LocalDirObjectStore, str], list[str]], store: LocalDirObjectStore
) -> tuple[float, list[str]]:
    started = time.perf_counter()
    keys = listing(store, UPLOAD)
    return (time.perf_counter() - started) * 1000, keys


def main() -> None:
    """Print the listing cost per store size, before and after, and their ratio."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 50000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"list('{UPLOAD}') on a store of N objects; median of {args.repeat}, interleaved")
    print(f"{'objects':>8} {'whole walk ms':>14} {'prefix walk ms':>15} {'speed-up':>9}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store = LocalDirObjectStore(Path(tmp))
            _fill(store, size)
            old_times, new_times = [], []
            for _ in range(args.repeat):  # interleaved pairs, so load swings hit both alike
                old_ms, old_keys = _timed_ms(_walk_whole_store, store)
                new_ms, new_keys = _timed_ms(_prefix_listing, store)
                assert old_keys == new_keys and len(new_keys) == PARTS
                old_times.append(old_ms)
                new_times.append(new_ms)
            old, new = statistics.median(old_times), statistics.median(new_times)
            print(f"{size:>8} {old:>14.2f} {new:>15.3f} {old / new:>8.0f}x")


if __name__ == "__main__":
    main()
