"""A lean hand-off from an event loop to worker threads: one queue put, one loop wake-up."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

_T = TypeVar("_T")

# As many as anyio's default limiter allows: a call beyond them waits for a free thread.
MAX_THREADS = 40

_Job = tuple[
    asyncio.AbstractEventLoop,
    "asyncio.Future[Any]",
    contextvars.Context,
    Callable[..., Any],
    tuple[Any, ...],
    dict[str, Any],
]


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return  # its caller was cancelled; it waits on the shield's inner future instead
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class WorkerThreads:
    """Daemon threads that run blocking calls for event loops, started as calls need them.

    What anyio's `to_thread.run_sync` (under Starlette's `run_in_threadpool`) does per call, a
    capacity limiter, cancel scopes and a Condition-based queue in Python, cost more CPU than
    a small STOW-RS instance's whole index write. Here a call is one put on a C queue (which
    wakes an idle thread) and one `call_soon_threadsafe` with the result; the call runs in a
    copy of its caller's context (log fields), and a cancelled caller still waits for it, as
    with anyio, so nothing the call uses is cleaned up under it.
    """

    def __init__(self, name: str, limit: int = MAX_THREADS) -> None:
        self._name = name
        self._limit = limit
        self._jobs: SimpleQueue[_Job] = SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job that no submitted job has reserved
        self._backlog = 0  # jobs queued while every thread was busy and no more could start
        self._threads = 0

    async def run(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """Run `fn(*args, **kwargs)` on a worker thread and return (or raise) what it did."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._submit((loop, future, contextvars.copy_context(), fn, args, kwargs))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The call runs on regardless: its caller unwinds only once it has finished.
            while not future.done():
                try:
                    await asyncio.wait((future,))
                except asyncio.CancelledError:
                    continue
            if not future.cancelled():
                future.exception()  # retrieved: its error, if any, goes with the cancellation
            raise

    def _submit(self, job: _Job) -> None:
        with self._lock:
            # Each job reserves an idle thread, or starts one: a job waits in the queue only
            # while all `limit` threads are busy (a call may wait on another one's outcome).
            start = False
            if self._idle:
                self._idle -= 1
            elif self._threads < self._limit:
                self._threads += 1
                start = True
            else:
                self._backlog += 1
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._work, name=self._name, daemon=True).start()

    def _work(self) -> None:
        get, lock = self._jobs.get, self._lock
        while True:
            loop, future, context, fn, args, kwargs = get()
            value, error = None, None
            try:
                value = context.run(fn, *args, **kwargs)
            except BaseException as exc:
                error = exc
            # A closed loop (its server stopped meanwhile) leaves nobody to answer.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, value, error)
            del loop, future, context, fn, args, kwargs, value, error
            with lock:
                if self._backlog:
                    self._backlog -= 1  # the next get() takes one of them
                else:
                    self._idle += 1


_default = WorkerThreads("sonobridge-worker")


async def to_thread(fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    """Run `fn(*args, **kwargs)` on the process's shared worker threads."""
    return await _default.run(fn, *args, **kwargs)
