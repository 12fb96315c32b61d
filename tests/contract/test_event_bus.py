"""Contract suite for the event bus port, run against the embedded log and real Kafka."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict

import pytest
from sqlalchemy import MetaData
from sqlalchemy.orm import Session

from sonobridge.common.bus.ports import (
    EventBus,
    ReceivedEvent,
    Subscription,
    dlq_topic,
    publish,
    publish_all,
)
from sonobridge.common.db import create_db_engine, session_factory
from sonobridge.common.delivery import ConsumerWorker, delivery_tables
from sonobridge.common.envelope import CloudEvent
from sonobridge.common.metrics import ServiceMetrics


def _event(key: str, body: bytes) -> CloudEvent:
    return CloudEvent(
        id=str(uuid.uuid4()),
        source="tests",
        type="test.Event",
        time=__import__("datetime").datetime.now(__import__("datetime").UTC),
        key=key,
        data=body,
    )


def _drain(sub: Subscription, want: int, rounds: int = 60) -> list[ReceivedEvent]:
    got: list[ReceivedEvent] = []
    for _ in range(rounds):
        got.extend(sub.poll(1.0))
        if len(got) >= want:
            break
    return got


def test_published_events_arrive_with_their_envelope(bus: EventBus, topic: str) -> None:
    sent = _event("1.2.840.1", b"payload")
    publish(bus, topic, sent)
    sub = bus.subscribe(f"g-{uuid.uuid4().hex[:8]}", [topic])
    try:
        [record] = _drain(sub, 1)
    finally:
        sub.close()
    got = record.cloud_event()
    assert (got.id, got.key, got.data, got.type, got.source) == (
        sent.id,
        sent.key,
        sent.data,
        sent.type,
        sent.source,
    )


def test_consumer_killed_before_commit_gets_the_message_again(bus: EventBus, topic: str) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    for i in range(3):
        publish(bus, topic, _event("k", f"m{i}".encode()))
    first = bus.subscribe(group, [topic])
    got = _drain(first, 3)
    assert [r.value for r in got] == [b"m0", b"m1", b"m2"]
    first.commit(got[0])
    first.close()  # dies without committing m1, m2

    second = bus.subscribe(group, [topic])
    try:
        again = _drain(second, 2)
        assert [r.value for r in again] == [b"m1", b"m2"]
        second.commit(again[-1])
    finally:
        second.close()

    third = bus.subscribe(group, [topic])
    try:
        assert third.poll(2.0) == []
    finally:
        third.close()


def test_per_key_order_holds_across_many_keys(bus: EventBus, topic: str) -> None:
    keys = [f"1.2.826.0.{k}" for k in range(8)]
    for seq in range(15):
        for key in keys:
            publish(bus, topic, _event(key, str(seq).encode()))
    sub = bus.subscribe(f"g-{uuid.uuid4().hex[:8]}", [topic])
    try:
        got = _drain(sub, len(keys) * 15)
    finally:
        sub.close()
    seen: dict[str, list[int]] = defaultdict(list)
    for record in got:
        seen[record.cloud_event().key].append(int(record.value))
    assert set(seen) == set(keys)
    assert all(seq == list(range(15)) for seq in seen.values())


def test_a_batch_published_at_once_arrives_whole_and_in_order(bus: EventBus, topic: str) -> None:
    sent = [_event(f"1.2.826.1.{n % 3}", str(n).encode()) for n in range(12)]
    publish_all(bus, [(topic, event) for event in sent])
    sub = bus.subscribe(f"g-{uuid.uuid4().hex[:8]}", [topic])
    try:
        got = _drain(sub, len(sent))
    finally:
        sub.close()
    assert sorted(r.cloud_event().id for r in got) == sorted(e.id for e in sent)
    for key in {e.key for e in sent}:
        assert [r.value for r in got if r.cloud_event().key == key] == [
            e.data for e in sent if e.key == key
        ]


def _worker(bus: EventBus, topic: str, handler, engine_url: str, attempts: int = 3):  # type: ignore[no-untyped-def]
    metadata = MetaData()
    _outbox, inbox = delivery_tables(metadata)
    engine = create_db_engine(engine_url)
    metadata.create_all(engine)
    metrics = ServiceMetrics("test")
    worker = ConsumerWorker(
        bus=bus,
        group=f"g-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        handler=handler,
        sessions=session_factory(engine),
        inbox=inbox,
        metrics=metrics,
        max_attempts=attempts,
        retry_backoff=0.0,
    )
    return worker, metrics


def test_poison_message_lands_on_dlq_and_the_partition_moves_on(
    bus: EventBus, topic: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    handled: list[bytes] = []
    calls: dict[bytes, int] = defaultdict(int)

    def handler(session: Session, record: ReceivedEvent, event: CloudEvent) -> None:
        calls[record.value] += 1
        if record.value == b"poison":
            raise RuntimeError("cannot parse exam manifest")
        handled.append(record.value)

    # One key, so poison and the message behind it share a partition.
    for body in (b"before", b"poison", b"after"):
        publish(bus, topic, _event("same-exam", body))
    worker, metrics = _worker(bus, topic, handler, f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        for _ in range(60):
            worker.run_once(1.0)
            if b"after" in handled:
                break
    finally:
        worker.close()
    assert handled == [b"before", b"after"]
    assert calls[b"poison"] == 3

    dlq = bus.subscribe(f"g-{uuid.uuid4().hex[:8]}", [dlq_topic(topic)])
    try:
        [dead] = _drain(dlq, 1)
    finally:
        dlq.close()
    headers = dict(dead.headers)
    assert dead.value == b"poison"
    assert b"cannot parse exam manifest" in headers["dlq_error"]
    assert headers["dlq_attempts"] == b"3"
    assert dead.cloud_event().key == "same-exam"  # original envelope kept for replay
    assert metrics.events_dead_lettered.labels(topic)._value.get() == 1


def test_foreign_record_is_dead_lettered_without_retries(
    bus: EventBus, topic: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    calls = []
    bus.send(topic, b"k", b"not a cloudevent", [("content-type", b"text/plain")])
    publish(bus, topic, _event("k", b"good"))
    worker, _ = _worker(
        bus, topic, lambda s, r, e: calls.append(r.value), f"sqlite:///{tmp_path / 'db.sqlite3'}"
    )
    try:
        for _ in range(60):
            worker.run_once(1.0)
            if calls:
                break
    finally:
        worker.close()
    assert calls == [b"good"]
    dlq = bus.subscribe(f"g-{uuid.uuid4().hex[:8]}", [dlq_topic(topic)])
    try:
        [dead] = _drain(dlq, 1)
    finally:
        dlq.close()
    assert b"UnreadableEvent" in dict(dead.headers)["dlq_error"]


def test_concurrent_publishers_lose_nothing(bus: EventBus, topic: str) -> None:
    def produce(worker_id: int) -> None:
        for i in range(25):
            publish(bus, topic, _event(f"key-{worker_id}", f"{worker_id}:{i}".encode()))

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sub = bus.subscribe(f"g-{uuid.uuid4().hex[:8]}", [topic])
    try:
        got = _drain(sub, 100)
    finally:
        sub.close()
    assert sorted(r.value for r in got) == sorted(
        f"{w}:{i}".encode() for w in range(4) for i in range(25)
    )


def test_readiness_check_passes_when_the_bus_answers(bus: EventBus) -> None:
    bus.check()


def test_kafka_readiness_check_fails_when_no_broker_answers() -> None:
    from sonobridge.common.bus.kafka import KafkaEventBus

    unreachable = KafkaEventBus("127.0.0.1:9")  # discard port: nothing speaks Kafka there
    try:
        with pytest.raises(Exception):  # noqa: B017 - kafka-python raises several types
            unreachable.check()
    finally:
        unreachable.close()
