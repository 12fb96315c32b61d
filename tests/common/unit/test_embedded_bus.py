"""The embedded log wakes a waiting consumer for its own topics only, and at once."""

from __future__ import annotations

import threading
from pathlib import Path

from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.bus.ports import ReceivedEvent


def test_an_append_wakes_the_consumers_of_its_topic_and_no_other(tmp_path: Path) -> None:
    bus = EmbeddedEventBus(tmp_path / "events.sqlite3")
    exams = bus.subscribe("reporting", ["exams"])
    instances = bus.subscribe("audit", ["instances"])
    try:
        # Nobody polls here: the flag a waiting consumer sleeps on is what an append sets.
        exams._appended.clear()
        instances._appended.clear()
        bus.send("instances", None, b"stored", [])
        assert not exams._appended.is_set()
        assert instances._appended.is_set()

        bus.send_many([("exams", None, b"completed", []), ("instances", None, b"again", [])])
        assert exams._appended.is_set()
    finally:
        exams.close()
        instances.close()
    # A closed consumer is no longer woken: close() takes it off its topics.
    exams._appended.clear()
    bus.send("exams", None, b"late", [])
    assert not exams._appended.is_set()
    bus.close()


def test_a_waiting_consumer_gets_a_record_of_its_topic_appended_meanwhile(tmp_path: Path) -> None:
    bus = EmbeddedEventBus(tmp_path / "events.sqlite3")
    consumer = bus.subscribe("reporting", ["exams"])
    got: list[ReceivedEvent] = []
    waiting = threading.Thread(target=lambda: got.extend(consumer.poll(timeout=60)))
    waiting.start()
    try:
        bus.send("instances", None, b"not for it", [])
        bus.send("exams", b"k", b"completed", [("h", b"1")])
        waiting.join(60)
        assert not waiting.is_alive()
        assert [(r.topic, r.offset, r.key, r.value, r.headers) for r in got] == [
            ("exams", 0, b"k", b"completed", [("h", b"1")])
        ]
    finally:
        waiting.join(60)
        consumer.close()
        bus.close()
