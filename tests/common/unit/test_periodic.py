"""The periodic worker: passes on a schedule, a failed pass survived, a prompt stop."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from sonobridge.common.periodic import Periodic


def _stop_after(passes: int, stop: threading.Event, calls: list[float]) -> None:
    calls.append(time.monotonic())
    if len(calls) >= passes:
        stop.set()


def test_a_thread_worker_runs_until_stopped_and_survives_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()
    calls: list[float] = []
    seen: list[tuple[str, bool]] = []

    def work() -> None:
        _stop_after(3, stop, calls)
        if len(calls) == 1:
            raise RuntimeError("database away")

    worker = Periodic(
        "sweep", work, interval=0.01, observe=lambda name, _s, failed: seen.append((name, failed))
    )
    worker(stop)
    assert len(calls) == 3
    assert seen == [("sweep", True), ("sweep", False), ("sweep", False)]
    assert "sweep pass failed" in caplog.text


def test_a_full_batch_runs_the_next_pass_at_once() -> None:
    stop = threading.Event()
    calls: list[float] = []

    def ship() -> int:
        _stop_after(3, stop, calls)
        return 100 if len(calls) < 3 else 1

    Periodic("relay", ship, interval=5.0, again=lambda shipped: shipped == 100)(stop)
    assert calls[-1] - calls[0] < 1.0


def test_a_failed_pass_waits_retry_after() -> None:
    stop = threading.Event()
    calls: list[float] = []

    def fail() -> None:
        _stop_after(2, stop, calls)
        raise RuntimeError

    Periodic("relay", fail, interval=30.0, retry_after=0.01)(stop)
    assert len(calls) == 2


def test_stop_ends_the_wait_promptly() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=Periodic("idle", lambda: None, interval=60.0), args=(stop,))
    thread.start()
    time.sleep(0.05)
    started = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 1.0


def test_jitter_stays_within_its_fraction() -> None:
    worker = Periodic("j", lambda: None, interval=10.0, jitter=0.2, rng=random.Random(1))
    delays = [worker._delay() for _ in range(200)]
    assert all(8.0 <= d <= 12.0 for d in delays) and len(set(delays)) > 1


def test_a_bad_schedule_is_refused() -> None:
    with pytest.raises(ValueError):
        Periodic("bad", lambda: None, interval=1.0, jitter=1.5)


def test_a_coroutine_runs_as_a_task_and_stops_cleanly() -> None:
    calls: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()

        async def tick() -> None:
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("survived")
            if len(calls) >= 3:
                stop.set()

        task = Periodic("tick", tick, interval=0.01).start(stop)
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert len(calls) == 3


def test_a_coroutine_also_runs_as_a_thread_worker() -> None:
    stop = threading.Event()
    calls: list[int] = []

    async def tick() -> None:
        calls.append(1)
        if len(calls) >= 2:
            stop.set()

    Periodic("tick", tick, interval=0.01)(stop)
    assert len(calls) == 2
