"""Bench-only probe: with SONOBRIDGE_TAIL_LOG set, log GC passes and slow spans of a service.

Put this folder first on PYTHONPATH (bench/ingest/stow_tail.py does). Each line of
`$SONOBRIDGE_TAIL_LOG.<pid>` is "kind start_wall_s seconds": GC passes by generation, outbox
relay passes, bus sends, object puts/publishes, SQL commits and event-loop callbacks over 5 ms.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import threading
import time

_PATH = os.environ.get("SONOBRIDGE_TAIL_LOG")


def _install() -> None:
    out = open(f"{_PATH}.{os.getpid()}", "a", buffering=1)  # noqa: SIM115 - lives with the process
    lock = threading.Lock()

    def note(kind: str, start: float, seconds: float) -> None:
        with lock:
            out.write(f"{kind} {start:.6f} {seconds:.6f}\n")

    gc_started: list[float] = [0.0, 0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_started[:] = [time.time(), time.perf_counter()]
        else:
            note(f"gc{info['generation']}", gc_started[0], time.perf_counter() - gc_started[1])

    gc.callbacks.append(on_gc)

    def timed(kind: str, fn, floor: float = 0.0):  # type: ignore[no-untyped-def]
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            wall, began = time.time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.perf_counter() - began
                if took >= floor:
                    note(kind, wall, took)

        return wrapper

    targets = [
        ("sonobridge.common.delivery", "OutboxRelay", "ship_once", "relay_pass"),
        ("sonobridge.common.bus.kafka", "KafkaEventBus", "send", "kafka_send"),
        ("sonobridge.common.bus.kafka", "KafkaEventBus", "send_many", "kafka_send_many"),
        ("sonobridge.common.bus.embedded", "EmbeddedEventBus", "send_many", "log_send_many"),
        ("sonobridge.common.objects.minio", "MinioObjectStore", "put", "minio_put"),
        ("sonobridge.common.objects.minio", "MinioStagedObject", "publish", "minio_publish"),
        ("sqlalchemy.orm.session", "Session", "commit", "sql_commit"),
        ("sqlalchemy.pool.impl", "QueuePool", "_do_get", "pool_get"),
        ("sonobridge.ingest.adapters.group_commit", "GroupCommit", "__call__", "group_commit"),
    ]

    def patch_when_imported() -> None:
        left = list(targets)
        while left:
            for item in list(left):
                module, cls, name, kind = item
                found = getattr(sys.modules.get(module), cls, None)
                if found is not None:
                    if hasattr(found, name):
                        setattr(found, name, timed(kind, getattr(found, name)))
                    left.remove(item)
            time.sleep(0.05)

    threading.Thread(target=patch_when_imported, daemon=True, name="tail-probe").start()

    import asyncio.events

    run = asyncio.events.Handle._run

    def slow_callback(self):  # type: ignore[no-untyped-def]
        wall, began = time.time(), time.perf_counter()
        try:
            return run(self)
        finally:
            took = time.perf_counter() - began
            if took > 0.005:
                note("loop_callback", wall, took)

    asyncio.events.Handle._run = slow_callback  # type: ignore[method-assign]


if _PATH:
    _install()
