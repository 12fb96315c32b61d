"""Dynamic micro-batching of concurrent requests onto one model session, with load shedding."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
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
    # Requests a model that does not batch runs at once, each on its caller's thread.
    direct_runs: int = 1
    # On CPU a batch costs each row about what a lone run does (image quality: batch 32 is no
    # cheaper per frame than batch 1, and its activations grow the arena by ~200 MB), so CPU
    # models run requests side by side unless told to batch; accelerators always batch.
    cpu_batching: bool = False


class _Slots:
    """A counting semaphore on a C queue of tokens.

    threading.Semaphore is Python code on a Condition: its acquire and release cost more than
    the rest of the serving path's own code on a 1 ms model (py-spy, GIL samples).
    """

    def __init__(self, count: int) -> None:
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(count):
            self._tokens.put(None)

    def acquire(self, blocking: bool = True) -> bool:
        """Take a slot, waiting for one unless blocking is False; True when taken."""
        try:
            self._tokens.get(blocking)
        except queue.Empty:
            return False
        return True

    def release(self) -> None:
        """Give a slot back."""
        self._tokens.put(None)

    def __enter__(self) -> _Slots:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class _Request:
    x: np.ndarray
    future: asyncio.Future[dict[str, np.ndarray]]
    enqueued: float

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])


class _ModelMetrics:
    """One model's metric children, looked up once."""

    def __init__(self, metrics: InferenceMetrics, label: str) -> None:
        self.queue_seconds = metrics.stage_seconds.labels(label, "queue")
        self.run_seconds = metrics.stage_seconds.labels(label, "run")
        self.batch_size = metrics.batch_size.labels(label)
        self.run_errors = metrics.errors.labels(label, "run")


class MicroBatcher:
    """Collect requests for up to max_wait_ms or max_batch_size rows, run them as one batch."""

    def __init__(
        self,
        name: str,
        run_batch: RunBatch,
        policy: BatchPolicy,
        metrics: InferenceMetrics | None = None,
        *,
        batching: bool = True,
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
        # False: every request runs on its caller's thread, at most direct_runs at a time.
        self.batching = batching
        # A slot is held while the session runs, by the batch thread or by a caller running
        # its own request; a batching model runs one thing at a time.
        self._slots = _Slots(1 if batching else max(1, policy.direct_runs))
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        # Rows of the last batch: a lone request last time means nobody to wait for now.
        self._last_rows = 0
        # Each labels() call validates and looks up its child under a lock; resolve them once.
        self._observed = _ModelMetrics(metrics, self.label) if metrics else None

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
        return (self._queue.qsize() if self._queue is not None else 0) + self._waiting

    def try_run_now(self, x: np.ndarray) -> dict[str, np.ndarray] | None:
        """Run `x` on the caller's thread when the model is idle, else None (use infer).

        An idle model has nobody to batch with: the hops to the loop and the batch thread and
        the wait for company would be all of the added latency.
        """
        if self._worker is None or self._queue is None or not self._queue.empty():
            return None
        if not self._slots.acquire(blocking=False):
            return None
        return self._run_in_slot(x, time.perf_counter())

    def run_here(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Wait for a free slot and run `x` on the caller's thread (models that do not batch)."""
        if self._worker is None:
            raise InferenceError(f"batcher for {self.name} is not started")
        enqueued = time.perf_counter()
        with self._waiting_lock:
            if self._waiting >= self.policy.max_queue:
                if self._metrics:
                    self._metrics.rejected.labels(self.label).inc()
                raise Overloaded(
                    f"model {self.name} has {self.policy.max_queue} requests waiting; retry later"
                )
            self._waiting += 1
        try:
            self._slots.acquire()
        finally:
            with self._waiting_lock:
                self._waiting -= 1
        if self._observed:
            self._observed.queue_seconds.observe(time.perf_counter() - enqueued)
        return self._run_in_slot(x, time.perf_counter())

    def _run_in_slot(self, x: np.ndarray, started: float) -> dict[str, np.ndarray]:
        """Run `x` on this thread in the slot the caller acquired, then free the slot."""
        try:
            outputs = self._run_batch(x)
        except Exception as exc:
            if self._observed:
                self._observed.run_errors.inc()
            raise InferenceError(f"model {self.name} failed: {exc}") from exc
        finally:
            self._slots.release()
        self._last_rows = int(x.shape[0])
        if self._observed:
            self._observed.batch_size.observe(x.shape[0])
            self._observed.run_seconds.observe(time.perf_counter() - started)
        return outputs

    def _run_locked(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with self._slots:
            return self._run_batch(x)

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
        # Company is only worth waiting for when requests have been arriving together.
        alone = self._last_rows <= first.rows
        while rows < self.policy.max_batch_size:
            if self._queue.empty():
                if alone and len(batch) == 1:
                    break
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
            self._last_rows = int(x.shape[0])
            try:
                outputs = await loop.run_in_executor(self._executor, self._run_locked, x)
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
