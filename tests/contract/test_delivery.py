"""Outbox and inbox guarantees on each edition's database and bus."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, update
from sqlalchemy.orm import Session

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.bus.ports import EventBus, ReceivedEvent, publish
from sonobridge.common.db import create_db_engine, session_factory
from sonobridge.common.delivery import ConsumerWorker, Outbox, OutboxRelay, delivery_tables
from sonobridge.common.envelope import CloudEvent, unpack, wrap
from sonobridge.common.metrics import ServiceMetrics


class CrashingBus:
    """Wraps a real bus and dies at a chosen moment, as a process crash would."""

    def __init__(self, inner: EventBus, *, after_send: bool) -> None:
        self.inner = inner
        self.after_send = after_send

    def send(self, topic: str, key: Any, value: bytes, headers: Any) -> None:
        if self.after_send:
            self.inner.send(topic, key, value, headers)
        raise SystemExit("relay process killed")

    def send_many(self, records: Any) -> None:
        # The relay sends its batch as one append where the bus can: crash around that.
        if self.after_send:
            for record in records:
                self.inner.send(*record)
        raise SystemExit("relay process killed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _schema(url: str) -> tuple[Any, Table, Table, Table]:
    metadata = MetaData()
    exams = Table(
        "exams",
        metadata,
        Column("id", String(64), primary_key=True),
        Column("completions", Integer, nullable=False),
    )
    outbox, inbox = delivery_tables(metadata)
    engine = create_db_engine(url)
    metadata.create_all(engine)
    return engine, exams, outbox, inbox


def _exam_completed(study: str) -> events_pb2.ExamCompleted:
    msg = events_pb2.ExamCompleted(instance_count=3)
    msg.context.study_instance_uid = study
    msg.context.exam_id = str(uuid.uuid4())
    return msg


@pytest.mark.parametrize("after_send", [False, True], ids=["before-publish", "after-publish"])
def test_relay_crash_loses_nothing_and_duplicates_are_harmless(
    stack: tuple[str, EventBus], after_send: bool
) -> None:
    url, bus = stack
    topic = f"test.outbox.{uuid.uuid4().hex[:10]}"
    bus.ensure_topics([topic, f"{topic}.dlq"])
    engine, exams, outbox_table, inbox = _schema(url)
    metrics = ServiceMetrics("test")
    study = f"1.2.999.{uuid.uuid4().int % 10**12}"

    with session_factory(engine).begin() as session:
        session.execute(insert(exams).values(id=study, completions=0))
        sent = wrap(_exam_completed(study), source="ingest", key=study)
        Outbox(outbox_table).add(session, topic, sent)

    crashing = CrashingBus(bus, after_send=after_send)
    with pytest.raises(SystemExit):
        OutboxRelay(engine, outbox_table, crashing, metrics).ship_once()  # type: ignore[arg-type]
    # The restarted relay ships the row the crash left unmarked, once.
    assert OutboxRelay(engine, outbox_table, bus, metrics).ship_once() == 1
    assert OutboxRelay(engine, outbox_table, bus, metrics).ship_once() == 0

    def count_completion(session: Session, record: ReceivedEvent, event: CloudEvent) -> None:
        assert unpack(event).context.study_instance_uid == study  # type: ignore[attr-defined]
        session.execute(
            update(exams).where(exams.c.id == event.key).values(completions=exams.c.completions + 1)
        )

    worker = ConsumerWorker(
        bus=bus,
        group=f"g-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        handler=count_completion,
        sessions=session_factory(engine),
        inbox=inbox,
        metrics=metrics,
        retry_backoff=0,
    )
    copies = 2 if after_send else 1
    try:
        for _ in range(60):
            worker.run_once(1.0)
            processed = metrics.events_consumed.labels(topic, "processed")._value.get()
            duplicates = metrics.events_consumed.labels(topic, "duplicate")._value.get()
            if processed + duplicates >= copies:
                break
        worker.run_once(1.0)  # nothing further may arrive
    finally:
        worker.close()
    assert (processed, duplicates) == (1, copies - 1)
    with engine.connect() as conn:
        assert conn.execute(select(exams.c.completions).where(exams.c.id == study)).scalar() == 1


def test_a_rolled_back_change_publishes_nothing(stack: tuple[str, EventBus]) -> None:
    url, bus = stack
    engine, exams, outbox_table, _ = _schema(url)
    study = f"1.2.999.{uuid.uuid4().int % 10**12}"
    with pytest.raises(RuntimeError), session_factory(engine).begin() as session:
        session.execute(insert(exams).values(id=study, completions=0))
        Outbox(outbox_table).emit(session, _exam_completed(study), source="ingest", key=study)
        raise RuntimeError("validation failed after staging")
    assert OutboxRelay(engine, outbox_table, bus, ServiceMetrics("test")).ship_once() == 0


def _published_twice(
    stack: tuple[str, EventBus], prefix: str
) -> tuple[Any, Table, Table, str, CloudEvent]:
    """Publish one exam's ExamCompleted twice, as a producer retry would, on a fresh topic."""
    url, bus = stack
    topic = f"{prefix}.{uuid.uuid4().hex[:10]}"
    bus.ensure_topics([topic, f"{topic}.dlq"])
    engine, exams, _, inbox = _schema(url)
    study = f"1.2.999.{uuid.uuid4().int % 10**12}"
    with engine.begin() as conn:
        conn.execute(insert(exams).values(id=study, completions=0))
    event = wrap(_exam_completed(study), source="ingest", key=study)
    publish(bus, topic, event)
    publish(bus, topic, event)  # a producer retry after a lost acknowledgement
    return engine, exams, inbox, topic, event


def _consume_both_copies(
    bus: EventBus, topic: str, engine: Any, inbox: Table, **handling: Any
) -> None:
    """Consume `topic` until the copy is recognised: one processed, one duplicate."""
    metrics = ServiceMetrics("test")
    worker = ConsumerWorker(
        bus=bus,
        group=f"g-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        sessions=session_factory(engine),
        inbox=inbox,
        metrics=metrics,
        retry_backoff=0,
        **handling,
    )
    try:
        for _ in range(60):
            worker.run_once(1.0)
            if metrics.events_consumed.labels(topic, "duplicate")._value.get() >= 1:
                break
    finally:
        worker.close()
    assert metrics.events_consumed.labels(topic, "processed")._value.get() == 1
    assert metrics.events_consumed.labels(topic, "duplicate")._value.get() == 1


def _completions(engine: Any, exams: Table, study: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(exams.c.completions).where(exams.c.id == study)).scalar()


def test_redelivered_event_through_the_bus_has_one_effect(stack: tuple[str, EventBus]) -> None:
    engine, exams, inbox, topic, event = _published_twice(stack, "test.delivery")

    def count_completion(session: Session, record: ReceivedEvent, ev: CloudEvent) -> None:
        session.execute(
            update(exams).where(exams.c.id == ev.key).values(completions=exams.c.completions + 1)
        )

    _consume_both_copies(stack[1], topic, engine, inbox, handler=count_completion)
    assert _completions(engine, exams, event.key) == 1


def test_a_staged_event_works_outside_the_transaction_and_has_one_effect(
    stack: tuple[str, EventBus],
) -> None:
    engine, exams, inbox, topic, event = _published_twice(stack, "test.staged")
    staged: list[str] = []

    def infer(record: ReceivedEvent, ev: CloudEvent) -> Any:
        staged.append(ev.id)
        # Another writer commits while the slow work runs: no write lock is held now.
        with session_factory(engine).begin() as other:
            other.execute(insert(exams).values(id=f"{ev.key}.other", completions=0))

        def commit(session: Session) -> None:
            session.execute(
                update(exams)
                .where(exams.c.id == ev.key)
                .values(completions=exams.c.completions + 1)
            )

        return commit

    _consume_both_copies(stack[1], topic, engine, inbox, stage=infer)
    assert staged == [event.id]  # the redelivery was recognised before any work
    assert _completions(engine, exams, event.key) == 1


def test_the_relay_ships_a_key_s_events_in_order_and_counts_what_a_full_batch_left(
    stack: tuple[str, EventBus],
) -> None:
    url, bus = stack
    topic = f"test.order.{uuid.uuid4().hex[:10]}"
    bus.ensure_topics([topic, f"{topic}.dlq"])
    engine, _exams, outbox_table, _ = _schema(url)
    study = f"1.2.999.{uuid.uuid4().int % 10**12}"
    sent = [wrap(_exam_completed(study), source="ingest", key=study) for _ in range(5)]
    for event in sent:  # one transaction each, as five requests would stage them
        with session_factory(engine).begin() as session:
            Outbox(outbox_table).add(session, topic, event)
    metrics = ServiceMetrics("test")
    relay = OutboxRelay(engine, outbox_table, bus, metrics, batch_size=3)

    assert relay.ship_once() == 3
    assert metrics.outbox_pending._value.get() == 2
    assert relay.ship_once() == 2
    assert metrics.outbox_pending._value.get() == 0
    assert relay.ship_once() == 0

    subscription = bus.subscribe(f"g-{uuid.uuid4().hex[:8]}", [topic])
    received: list[str] = []
    try:
        for _ in range(30):
            received += [record.cloud_event().id for record in subscription.poll(1.0)]
            if len(received) >= len(sent):
                break
    finally:
        subscription.close()
    assert received == [event.id for event in sent]
    with engine.connect() as conn:
        unpublished = outbox_table.c.published_at.is_(None)
        assert conn.execute(select(outbox_table.c.id).where(unpublished)).all() == []
