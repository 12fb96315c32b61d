"""Consumer lanes: per-key order, in-order offset commits, and redelivery of unfinished records."""

from __future__ import annotations

import threading
import time
import uuid

from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.bus.ports import ReceivedEvent
from sonobridge.common.lanes import Lanes


class FakeSubscription:
    """Records the commits a lane dispatcher makes."""

    def __init__(self) -> None:
        self.committed: list[int] = []

    def poll(self, timeout: float, max_records: int = 100) -> list[ReceivedEvent]:
        return []

    def commit(self, record: ReceivedEvent) -> None:
        self.committed.append(record.offset)

    def lag(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass


def _record(offset: int, key: str) -> ReceivedEvent:
    return ReceivedEvent("t", 0, offset, key.encode(), b"")


def _settle_until(lanes: Lanes, sub: FakeSubscription, done: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not (sub.committed and sub.committed[-1] >= done) and time.monotonic() < deadline:
        lanes.settle(sub, wait=0.05)


def _keys_in_two_lanes(lanes: Lanes) -> tuple[str, str]:
    keys = [f"study-{i}" for i in range(50)]
    first = keys[0]
    other = next(
        k for k in keys if lanes.lane_of(_record(0, k)) != lanes.lane_of(_record(0, first))
    )
    return first, other


def test_a_slow_exam_does_not_hold_up_another_exams_record() -> None:
    release = threading.Event()
    handled: list[int] = []

    def process(record: ReceivedEvent) -> str:
        if record.offset == 0:
            release.wait(10)
        handled.append(record.offset)
        return "processed"

    lanes = Lanes(process, 2)
    slow, fast = _keys_in_two_lanes(lanes)
    sub = FakeSubscription()
    lanes.start("test")
    try:
        lanes.hand_out(_record(0, slow))
        lanes.hand_out(_record(1, fast))
        deadline = time.monotonic() + 10
        while 1 not in handled and time.monotonic() < deadline:
            lanes.settle(sub, wait=0.05)
        assert handled == [1]
        # The later record is done, the earlier one is not: the offset may not move past 0.
        lanes.settle(sub)
        assert sub.committed == []
        release.set()
        _settle_until(lanes, sub, 1)
        assert sub.committed == [1]
        assert lanes.pending == 0
    finally:
        release.set()
        lanes.stop()


def test_records_of_one_key_are_handled_in_log_order() -> None:
    seen: list[int] = []

    def process(record: ReceivedEvent) -> str:
        # Early records take longest: a second thread on the same key would overtake them.
        time.sleep(0.02 * (5 - record.offset))
        seen.append(record.offset)
        return "processed"

    lanes = Lanes(process, 4)
    sub = FakeSubscription()
    lanes.start("test")
    try:
        for offset in range(5):
            lanes.hand_out(_record(offset, "one-study"))
        _settle_until(lanes, sub, 4)
    finally:
        lanes.stop()
    assert seen == [0, 1, 2, 3, 4]
    assert sub.committed[-1] == 4


def test_records_not_begun_at_stop_are_handed_out_again_after_a_restart(tmp_path) -> None:
    bus = EmbeddedEventBus(tmp_path / "events.sqlite3")
    topic = f"t.{uuid.uuid4().hex[:8]}"
    for i in range(4):
        bus.send(topic, b"same-exam", str(i).encode(), [])
    started = threading.Event()
    release = threading.Event()
    handled: list[bytes] = []

    def blocking(record: ReceivedEvent) -> str:
        started.set()
        release.wait(10)
        handled.append(record.value)
        return "processed"

    sub = bus.subscribe("g", [topic])
    lanes = Lanes(blocking, 2)
    lanes.start("test")
    for record in sub.poll(1.0):
        lanes.hand_out(record)
    assert started.wait(10)
    stopper = threading.Thread(target=lanes.stop)
    stopper.start()
    release.set()
    stopper.join(10)
    lanes.settle(sub)
    sub.close()
    # Only the record in flight finished; the three queued behind it come back.
    assert handled == [b"0"]
    again = bus.subscribe("g", [topic])
    assert [r.value for r in again.poll(1.0)] == [b"1", b"2", b"3"]
    again.close()
    bus.close()
