"""Consume in several lanes: one key's records stay in order, offsets commit only in order."""

from __future__ import annotations

import logging
import queue
import threading
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sonobridge.common.bus.ports import ReceivedEvent, Subscription

log = logging.getLogger(__name__)

Process = Callable[[ReceivedEvent], object]
"""Take one record to a final outcome (processed, duplicate, dead-lettered); never commits."""


@dataclass
class _Ticket:
    """A record handed to a lane; `finished` is set on the polling thread only."""

    record: ReceivedEvent
    finished: bool = False
    failed: bool = False


class LaneFailed(RuntimeError):
    """A lane could not settle a record (the bus failed while dead-lettering it)."""


class Lanes:
    """Hand records to `count` threads by key, and commit each partition's finished prefix.

    A key always lands in the same lane, so one exam's events are handled in log order, while a
    slow exam no longer holds up the exams behind it. A partition's offset moves past a record
    only once it and every record before it are finished: after a crash with a later record done
    and an earlier one in flight, the log hands out both again and the inbox makes the repeat of
    the later one harmless. Polling and committing stay on the caller's thread (a Kafka consumer
    is not thread-safe).
    """

    def __init__(self, process: Process, count: int, *, in_flight: int | None = None) -> None:
        if count < 1:
            raise ValueError("a consumer needs at least one lane")
        self.process = process
        self.count = count
        self.in_flight = in_flight or 4 * count
        self._lanes: list[queue.Queue[_Ticket | None]] = [queue.Queue() for _ in range(count)]
        self._finished: queue.Queue[_Ticket] = queue.Queue()
        self._partitions: dict[tuple[str, int], deque[_Ticket]] = {}
        self._pending = 0
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def pending(self) -> int:
        """Records handed to a lane and not yet committed."""
        return self._pending

    def room(self) -> int:
        """How many more records may be handed out now."""
        return max(0, self.in_flight - self._pending)

    def lane_of(self, record: ReceivedEvent) -> int:
        """The lane for `record`'s key (stable across runs, unlike Python's salted hash)."""
        return zlib.crc32(record.key or b"") % self.count

    def start(self, name: str) -> None:
        """Start the lane threads."""
        self._threads = [
            threading.Thread(target=self._run, args=(q,), name=f"{name}-lane-{i}", daemon=True)
            for i, q in enumerate(self._lanes)
        ]
        for thread in self._threads:
            thread.start()

    def hand_out(self, record: ReceivedEvent) -> None:
        """Queue `record` on its key's lane."""
        ticket = _Ticket(record)
        self._partitions.setdefault((record.topic, record.partition), deque()).append(ticket)
        self._pending += 1
        self._lanes[self.lane_of(record)].put(ticket)

    def settle(self, subscription: Subscription, wait: float = 0.0) -> int:
        """Take in finished records (waiting up to `wait` for one); commit each whole prefix."""
        taken: list[_Ticket] = []
        try:
            first = self._finished.get(timeout=wait) if wait > 0 else self._finished.get_nowait()
            taken.append(first)
            while True:
                taken.append(self._finished.get_nowait())
        except queue.Empty:
            pass
        for ticket in taken:
            if ticket.failed:
                raise LaneFailed(f"{ticket.record.topic}@{ticket.record.offset}")
            ticket.finished = True
        if taken:
            for waiting in self._partitions.values():
                last = None
                while waiting and waiting[0].finished:
                    last = waiting.popleft().record
                    self._pending -= 1
                if last is not None:
                    subscription.commit(last)
        return len(taken)

    def stop(self) -> None:
        """Let each lane finish its current record, leave the rest for redelivery, and join."""
        self._stopping.set()
        for lane in self._lanes:
            lane.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []

    def forget(self) -> None:
        """Drop what was handed out and not committed (the group is rejoined from its offsets)."""
        self._partitions.clear()
        self._pending = 0

    def _run(self, lane: queue.Queue[_Ticket | None]) -> None:
        while (ticket := lane.get()) is not None:
            if self._stopping.is_set():
                # Left uncommitted: the next run is handed this record again.
                continue
            try:
                self.process(ticket.record)
            except Exception:
                # process() settles handler errors itself; what escapes is the bus or a bug: the
                # record stays uncommitted and the polling thread rejoins, as one lane would.
                log.exception("lane failed on %s@%d", ticket.record.topic, ticket.record.offset)
                ticket.failed = True
            self._finished.put(ticket)
