"""Dynamic micro-batching of concurrent requests onto one model session, with load shedding."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from sonobridge.inference.domain.errors import InferenceError, Overloaded
from sonobridge.inference.metrics import InferenceMetrics

RunBatch = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass(frozen=True)
class BatchPolicy:
    """How long to wait for company and how much to accept before shedding load."""

    max_batch_size: int = 32
    max_wait_ms: float = 2.0
    max_queue: int = 256


@dataclass
class _Request:
    x: np.ndarray
    future: asyncio.Future[dict[str, np.ndarray]]
    enqueued: float

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])


class MicroBatcher:
    """Collect requests for up to max_wait_ms or max_batch_size rows, run them as one batch."""

    def __init__(
        self,
        name: str,
        run_batch: RunBatch,
        policy: BatchPolicy,
        metrics: InferenceMetrics | None = None,
    ) -> None:
        self.name = name
        # Metrics are labelled by model name only: versions come and go, names are few.
        self.label = name.split(":", 1)[0]
        self._run_batch = run_batch
        self.policy = policy
        self._metrics = metrics
        self._queue: asyncio.Queue[_Request] | None = None
        self._worker: asyncio.Task[None] | None = None
        # One thread per model: batches run one after another while the event loop keeps
        # accepting and grouping the next requests.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ort-{name}")

    async def start(self) -> None:
        """Start the batching loop on the running event loop."""
        if self._worker is None:
            self._queue = asyncio.Queue(maxsize=self.policy.max_queue)
            self._worker = asyncio.create_task(self._loop(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        """Stop batching; waiting requests fail with an InferenceError."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._queue is not None:
            while not self._queue.empty():
                req = self._queue.get_nowait()
                if not req.future.done():
                    req.future.set_exception(InferenceError(f"model {self.name} was unloaded"))
        self._executor.shutdown(wait=True)

    @property
    def queue_depth(self) -> int:
        """Return the number of requests waiting."""
        return self._queue.qsize() if self._queue is not None else 0

    async def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Queue rows x [k, ...] and return the model outputs for exactly those rows."""
        if self._queue is None:
            raise InferenceError(f"batcher for {self.name} is not started")
        loop = asyncio.get_running_loop()
        req = _Request(x, loop.create_future(), time.perf_counter())
        try:
            self._queue.put_nowait(req)
        except asyncio.QueueFull:
            if self._metrics:
                self._metrics.rejected.labels(self.label).inc()
            raise Overloaded(
                f"model {self.name} has {self.policy.max_queue} requests waiting; retry later"
            ) from None
        if self._metrics:
            self._metrics.queue_depth.labels(self.label).set(self._queue.qsize())
        return await req.future

    async def _collect(self, first: _Request) -> tuple[list[_Request], _Request | None]:
        assert self._queue is not None
        batch, rows = [first], first.rows
        deadline = time.perf_counter() + self.policy.max_wait_ms / 1000
        while rows < self.policy.max_batch_size:
            if self._queue.empty():
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                nxt = self._queue.get_nowait()
            if rows + nxt.rows > self.policy.max_batch_size:
                return batch, nxt
            batch.append(nxt)
            rows += nxt.rows
        return batch, None

    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        carry: _Request | None = None
        while True:
            first = carry if carry is not None else await self._queue.get()
            batch, carry = await self._collect(first)
            live = [r for r in batch if not r.future.done()]
            if self._metrics:
                self._metrics.queue_depth.labels(self.label).set(self._queue.qsize())
            if not live:
                continue
            started = time.perf_counter()
            x = live[0].x if len(live) == 1 else np.concatenate([r.x for r in live])
            try:
                outputs = await loop.run_in_executor(self._executor, self._run_batch, x)
            except Exception as exc:  # the batch's callers get the error; the loop goes on
                if self._metrics:
                    self._metrics.errors.labels(self.label, "run").inc()
                for r in live:
                    if not r.future.done():
                        r.future.set_exception(InferenceError(f"model {self.name} failed: {exc}"))
                continue
            if self._metrics:
                m = self._metrics
                m.batch_size.labels(self.label).observe(x.shape[0])
                m.stage_seconds.labels(self.label, "run").observe(time.perf_counter() - started)
                for r in live:
                    m.stage_seconds.labels(self.label, "queue").observe(started - r.enqueued)
            offset = 0
            for r in live:
                part = {k: v[offset : offset + r.rows] for k, v in outputs.items()}
                offset += r.rows
                if not r.future.done():
                    r.future.set_result(part)
