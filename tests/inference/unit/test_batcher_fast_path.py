"""The batcher's fast paths: a lone request runs at once, CPU models run side by side."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from sonobridge.inference.domain.errors import Overloaded
from sonobridge.inference.runtime.batcher import BatchPolicy, MicroBatcher

# Long enough that a request held for company would never finish within the test's wait.
FOREVER_MS = 600_000.0


def _sums(seen: list[tuple[int, str]]):
    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        seen.append((int(x.shape[0]), threading.current_thread().name))
        return {"y": x.sum(axis=1, keepdims=True)}

    return run


def test_an_idle_model_runs_a_request_on_the_callers_thread(loop) -> None:
    seen: list[tuple[int, str]] = []
    b = MicroBatcher("sum", _sums(seen), BatchPolicy(max_wait_ms=FOREVER_MS))
    loop.run_until_complete(b.start())
    out = b.try_run_now(np.ones((1, 3), np.float32))
    loop.run_until_complete(b.stop())
    assert out is not None and float(out["y"][0, 0]) == 3.0
    assert seen == [(1, threading.current_thread().name)]


def test_a_busy_model_leaves_the_request_to_the_batcher(loop) -> None:
    release, running = threading.Event(), threading.Event()

    def slow(x: np.ndarray) -> dict[str, np.ndarray]:
        running.set()
        release.wait(30)
        return {"y": x}

    b = MicroBatcher("slow", slow, BatchPolicy(max_wait_ms=0))
    loop.run_until_complete(b.start())
    holder = threading.Thread(target=b.try_run_now, args=(np.zeros((1, 1), np.float32),))
    holder.start()
    assert running.wait(30)
    assert b.try_run_now(np.zeros((1, 1), np.float32)) is None
    release.set()
    holder.join()
    loop.run_until_complete(b.stop())


def test_a_lone_request_is_not_held_for_company_but_a_crowd_is_batched(loop) -> None:
    seen: list[tuple[int, str]] = []
    b = MicroBatcher("sum", _sums(seen), BatchPolicy(max_batch_size=8, max_wait_ms=FOREVER_MS))

    async def scenario() -> None:
        await b.start()
        # With the wait applied, this lone request would sit for FOREVER_MS.
        await asyncio.wait_for(b.infer(np.ones((1, 2), np.float32)), 60)
        crowd = [b.infer(np.full((1, 2), i, np.float32)) for i in range(16)]
        outs = await asyncio.wait_for(asyncio.gather(*crowd), 60)
        assert [float(o["y"][0, 0]) for o in outs] == [2.0 * i for i in range(16)]
        await b.stop()

    loop.run_until_complete(scenario())
    assert [rows for rows, _ in seen] == [1, 8, 8]


def test_a_model_that_does_not_batch_runs_requests_side_by_side_up_to_its_slots(loop) -> None:
    inside, peak, started, lock = [0], [0], [0], threading.Lock()
    first_two = threading.Barrier(2, timeout=30)
    ran_on: list[str] = []

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        with lock:
            inside[0] += 1
            started[0] += 1
            peak[0] = max(peak[0], inside[0])
            nth = started[0]
            ran_on.append(threading.current_thread().name)
        if nth <= 2:
            first_two.wait()  # only passes when two runs are inside at once
        time.sleep(0.05)  # long enough that a third caller would overlap without the slots
        with lock:
            inside[0] -= 1
        return {"y": x * 2}

    b = MicroBatcher("pair", run, BatchPolicy(direct_runs=2), batching=False)
    loop.run_until_complete(b.start())
    outs: list[dict[str, np.ndarray]] = []
    callers = [
        threading.Thread(target=lambda i=i: outs.append(b.run_here(np.full((1, 1), i))))
        for i in range(6)
    ]
    for c in callers:
        c.start()
    for c in callers:
        c.join(60)
    loop.run_until_complete(b.stop())
    assert peak[0] == 2
    assert sorted(float(o["y"][0, 0]) for o in outs) == [0, 2, 4, 6, 8, 10]
    assert sorted(ran_on) == sorted(c.name for c in callers)


def test_a_model_that_does_not_batch_sheds_load_beyond_its_queue(loop) -> None:
    release, running = threading.Event(), threading.Event()

    def slow(x: np.ndarray) -> dict[str, np.ndarray]:
        running.set()
        release.wait(30)
        return {"y": x}

    b = MicroBatcher("slow", slow, BatchPolicy(direct_runs=1, max_queue=1), batching=False)
    loop.run_until_complete(b.start())
    first = threading.Thread(target=b.run_here, args=(np.zeros((1, 1), np.float32),))
    first.start()
    assert running.wait(30)
    second = threading.Thread(target=b.run_here, args=(np.zeros((1, 1), np.float32),))
    second.start()
    deadline = time.monotonic() + 30
    while b.queue_depth < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(Overloaded):
        b.run_here(np.zeros((1, 1), np.float32))
    release.set()
    first.join(30)
    second.join(30)
    loop.run_until_complete(b.stop())
