"""CPU per event-loop-to-thread hand-off: Starlette's run_in_threadpool against common.handoff.

Runs a trivial call (a few microseconds of work) on a worker thread from `--callers` concurrent
tasks, in interleaved turns, and prints process CPU (every thread) and wall time per call, with
the load average. The call itself is the same in both, so the difference is the hand-off: what
each STOW-RS part pays once (twice for a refused part). Figures, never a pass/fail:

    uv run python bench/common/bench_handoff.py [--calls 20000] [--callers 1,4] [--pairs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from starlette.concurrency import run_in_threadpool

from sonobridge.common.handoff import to_thread

Runner = Callable[..., Awaitable[Any]]


def _work(value: int) -> int:
    return value + 1


async def _drive(run: Runner, calls: int, callers: int) -> None:
    async def caller(count: int) -> None:
        for i in range(count):
            await run(_work, i)

    await asyncio.gather(*(caller(calls // callers) for _ in range(callers)))


def _measure(run: Runner, calls: int, callers: int) -> tuple[float, float]:
    """Return (CPU us, wall us) per call."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_drive(run, 200, callers))  # warm: threads started
        cpu, wall = time.process_time(), time.perf_counter()
        runner.run(_drive(run, calls, callers))
    return (
        1e6 * (time.process_time() - cpu) / calls,
        1e6 * (time.perf_counter() - wall) / calls,
    )


def main() -> None:
    """Print CPU and wall microseconds per hand-off, median of interleaved pairs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--callers", default="1,4")
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    runners: dict[str, Runner] = {"run_in_threadpool": run_in_threadpool, "handoff": to_thread}
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'callers':>7s} {'hand-off':18s} {'CPU us/call':>12s} {'wall us/call':>13s}")
    for callers in (int(c) for c in args.callers.split(",")):
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
        for _ in range(args.pairs):
            for name, run in runners.items():
                figures[name].append(_measure(run, args.calls, callers))
        for name, runs in figures.items():
            cpu = statistics.median(c for c, _ in runs)
            wall = statistics.median(w for _, w in runs)
            print(f"{callers:7d} {name:18s} {cpu:12.1f} {wall:13.1f}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
