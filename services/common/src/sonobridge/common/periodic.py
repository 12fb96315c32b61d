"""One periodic worker: run a pass every N seconds, survive a failed pass, stop promptly."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

Pass = Callable[[], object]
"""One pass of the work; a truthy result with `again` set asks for the next pass at once."""

AsyncPass = Callable[[], Awaitable[object]]


class PassObserver(Protocol):
    """The metrics hook: told each pass's name, duration and whether it failed."""

    def __call__(self, name: str, seconds: float, failed: bool) -> None: ...


@dataclass
class Periodic:
    """Run `work` every `interval` seconds until stopped; a failing pass is logged and retried."""

    name: str
    work: Pass | AsyncPass
    interval: float
    # A fraction of the interval added or removed at random, so replicas do not all wake together.
    jitter: float = 0.0
    # Wait after a failed pass; None waits the normal interval.
    retry_after: float | None = None
    # Run the next pass at once while a pass reports more work (a full batch), without waiting.
    again: Callable[[object], bool] | None = None
    observe: PassObserver | None = None
    rng: random.Random | None = None
    # Set by whoever makes new work: the next pass starts at once instead of after `interval`.
    wake: threading.Event | None = None
    # After a pass, sleep this long before heeding `wake` again: work made meanwhile raises the
    # flag without waking this thread (a thread wake-up per commit costs more than the pass).
    linger: float = 0.0

    def __post_init__(self) -> None:
        if self.interval < 0 or not 0 <= self.jitter < 1:
            raise ValueError("interval must be >= 0 and jitter within [0, 1)")

    def __call__(self, stop: threading.Event) -> None:
        """Run in a thread (a ServiceHost worker) until `stop` is set."""
        if inspect.iscoroutinefunction(self.work):
            asyncio.run(self._run_async_until(stop))
            return
        while not stop.is_set():
            wait = self._pass_sync()
            if wait and self.wake is None:
                stop.wait(wait)
            elif wait and self.wake is not None:
                if self.linger and stop.wait(min(self.linger, wait)):
                    break
                self._sleep_until_woken(stop, self.wake, max(0.0, wait - self.linger))

    @staticmethod
    def _sleep_until_woken(stop: threading.Event, wake: threading.Event, wait: float) -> None:
        # Two events cannot be waited on at once: look at `stop` every 0.1 s while waiting.
        deadline = time.monotonic() + wait
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or wake.wait(min(0.1, left)):
                break
        # Cleared before the next pass: work made during it raises the flag again.
        wake.clear()

    async def run(self, stop: asyncio.Event) -> None:
        """Run as an asyncio task until `stop` is set; cancelling the task also stops it."""
        while not stop.is_set():
            wait = await self._pass_async()
            if wait:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)

    def start(self, stop: asyncio.Event) -> asyncio.Task[None]:
        """Start `run` as a named task on the running loop."""
        return asyncio.get_running_loop().create_task(self.run(stop), name=self.name)

    async def _run_async_until(self, stop: threading.Event) -> None:
        while not stop.is_set():
            wait = await self._pass_async()
            # Poll the thread event in short steps: it cannot be awaited.
            deadline = time.monotonic() + wait
            while not stop.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(min(0.1, deadline - time.monotonic()))

    def _pass_sync(self) -> float:
        started = time.monotonic()
        try:
            result = self.work()
        except Exception:
            log.exception("%s pass failed; retrying", self.name)
            return self._finish(started, failed=True, result=None)
        return self._finish(started, failed=False, result=result)

    async def _pass_async(self) -> float:
        started = time.monotonic()
        try:
            result = self.work()
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            log.exception("%s pass failed; retrying", self.name)
            return self._finish(started, failed=True, result=None)
        return self._finish(started, failed=False, result=result)

    def _finish(self, started: float, *, failed: bool, result: object) -> float:
        if self.observe is not None:
            self.observe(self.name, time.monotonic() - started, failed)
        if failed:
            return self.retry_after if self.retry_after is not None else self._delay()
        if self.again is not None and self.again(result):
            return 0.0
        return self._delay()

    def _delay(self) -> float:
        if not self.jitter:
            return self.interval
        spread = self.interval * self.jitter
        return max(0.0, self.interval + (self.rng or random).uniform(-spread, spread))
