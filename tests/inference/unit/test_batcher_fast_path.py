"""The batcher's idle fast path: a lone request runs at once, a busy model still batches."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

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
