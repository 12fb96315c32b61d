"""The lean worker-thread hand-off: results, errors, context, cancellation, a bounded pool."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading

import pytest

from sonobridge.common.handoff import WorkerThreads

_field: contextvars.ContextVar[str] = contextvars.ContextVar("field", default="unset")


def test_a_call_runs_on_another_thread_in_its_callers_context() -> None:
    pool = WorkerThreads("test-worker")

    def where(suffix: str, *, twice: bool) -> tuple[str, str]:
        return threading.current_thread().name, _field.get() + suffix * (2 if twice else 1)

    async def main() -> tuple[str, str]:
        _field.set("request-7")
        return await pool.run(where, "!", twice=True)

    name, value = asyncio.run(main())
    assert name == "test-worker"
    assert value == "request-7!!"


def test_an_error_reaches_the_caller_and_the_thread_serves_on() -> None:
    pool = WorkerThreads("test-worker")

    def fail() -> None:
        raise LookupError("no such instance")

    async def main() -> int:
        with pytest.raises(LookupError, match="no such instance"):
            await pool.run(fail)
        return await pool.run(sum, [1, 2, 3])

    assert asyncio.run(main()) == 6


def test_a_cancelled_caller_unwinds_only_after_its_call_has_finished() -> None:
    pool = WorkerThreads("test-worker")
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def slow() -> str:
        started.set()
        release.wait(10)
        finished.append("call")
        return "done"

    async def caller() -> None:
        try:
            await pool.run(slow)
        finally:
            finished.append("caller unwound")

    async def main() -> None:
        task = asyncio.create_task(caller())
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        task.cancel()
        await asyncio.sleep(0.05)
        task.cancel()  # a second cancellation is held off too
        await asyncio.sleep(0.05)
        assert not task.done()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert finished == ["call", "caller unwound"]


def test_threads_are_reused_and_bounded_and_a_backlog_is_served() -> None:
    pool = WorkerThreads("test-bounded", limit=2)
    gate = threading.Barrier(2, timeout=10)
    names: set[int] = set()

    def meet() -> None:
        names.add(threading.get_ident())
        gate.wait()  # two calls run at once: each on its own thread

    def note() -> int:
        names.add(threading.get_ident())
        return 1

    async def main() -> int:
        await asyncio.gather(pool.run(meet), pool.run(meet))
        # Eight calls at once on two threads: six wait in the queue, all are answered.
        return sum(await asyncio.gather(*(pool.run(note) for _ in range(8))))

    assert asyncio.run(main()) == 8
    assert len(names) == 2
    assert sum(t.name == "test-bounded" for t in threading.enumerate()) == 2


def test_a_cancelled_callers_failed_call_leaves_no_unretrieved_error() -> None:
    pool = WorkerThreads("test-worker")
    started, release = threading.Event(), threading.Event()
    reported: list[dict[str, object]] = []

    def fail() -> None:
        started.set()
        release.wait(10)
        raise LookupError("no such instance")

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        task = asyncio.create_task(pool.run(fail))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        task.cancel()
        await asyncio.sleep(0.05)
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        del task
        gc.collect()  # an unretrieved future error is reported when the future is collected

    asyncio.run(main())
    assert reported == []
