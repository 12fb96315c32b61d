"""Delivery retention on each edition's database: what it purges, what it keeps, and crashes."""

from __future__ import annotations

import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from killed_child import kill_at_marker
from sqlalchemy import Engine, MetaData, Table, func, insert, select

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.bus.ports import EventBus, ReceivedEvent, publish
from sonobridge.common.db import create_db_engine, session_factory
from sonobridge.common.delivery import ConsumerWorker, Outbox, OutboxRelay, delivery_tables
from sonobridge.common.envelope import CloudEvent, wrap
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.retention import DeliveryRetention, Purged

WEEK, FORTNIGHT = timedelta(days=7), timedelta(days=14)


def _schema(url: str) -> tuple[Engine, Table, Table]:
    outbox, inbox = delivery_tables(metadata := MetaData())
    engine = create_db_engine(url)
    metadata.create_all(engine)
    return engine, outbox, inbox


def _retention(
    engine: Engine, outbox: Table, inbox: Table, *, batch_size: int = 500, **kept: Any
) -> DeliveryRetention:
    return DeliveryRetention(
        engine,
        outbox,
        inbox,
        ServiceMetrics("test"),
        outbox_retention=kept.pop("outbox_retention", WEEK),
        inbox_retention=kept.pop("inbox_retention", FORTNIGHT),
        batch_size=batch_size,
        **kept,
    )


def _stage(engine: Engine, outbox: Table, *, age: timedelta, shipped: timedelta | None) -> str:
    """Insert an outbox row created `age` ago, shipped `shipped` ago (None: not yet)."""
    now = datetime.now(UTC)
    event_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            insert(outbox).values(
                event_id=event_id,
                topic="test.retention",
                key="k",
                source="test",
                type="t",
                time=now - age,
                data=event_id.encode(),
                created_at=now - age,
                published_at=None if shipped is None else now - shipped,
            )
        )
    return event_id


def _record(engine: Engine, inbox: Table, *, age: timedelta, group: str = "g") -> str:
    """Insert an inbox record of an event processed `age` ago."""
    event_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            insert(inbox).values(
                consumer_group=group,
                event_id=event_id,
                topic="test.retention",
                type="t",
                processed_at=datetime.now(UTC) - age,
            )
        )
    return event_id


def _ids(engine: Engine, table: Table) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(table.c.event_id)).scalars())


def test_old_shipped_rows_go_and_unshipped_or_fresh_ones_stay(database_url: str) -> None:
    engine, outbox, inbox = _schema(database_url)
    # Shipped a week and one to five hours ago: the last staged is the first due.
    old_shipped = [
        _stage(engine, outbox, age=timedelta(days=9), shipped=WEEK + timedelta(hours=n + 1))
        for n in range(5)
    ]
    kept = {
        _stage(engine, outbox, age=timedelta(days=400), shipped=None),  # a relay down for a year
        _stage(engine, outbox, age=timedelta(seconds=1), shipped=None),
        # Created long ago but shipped only yesterday: retention counts from the shipping.
        _stage(engine, outbox, age=timedelta(days=30), shipped=timedelta(days=1)),
        _stage(engine, outbox, age=WEEK, shipped=WEEK - timedelta(minutes=5)),
    }
    old_records = {_record(engine, inbox, age=FORTNIGHT + timedelta(hours=n + 1)) for n in range(3)}
    fresh_records = {_record(engine, inbox, age=FORTNIGHT - timedelta(hours=1))}
    retention = _retention(engine, outbox, inbox, batch_size=2)

    # Small batches, each one transaction: two of the five old rows per pass, oldest first.
    assert retention.purge_once() == Purged(outbox=2, inbox=2)
    assert _ids(engine, outbox) == kept | set(old_shipped[:3])
    passes = [retention.purge_once() for _ in range(3)]

    assert passes == [Purged(2, 1), Purged(1, 0), Purged(0, 0)]
    assert _ids(engine, outbox) == kept
    assert _ids(engine, inbox) == fresh_records
    assert old_records.isdisjoint(_ids(engine, inbox))
    metrics = retention.metrics
    assert metrics.delivery_rows_purged.labels("outbox")._value.get() == 5
    assert metrics.delivery_rows_purged.labels("inbox")._value.get() == 3
    assert metrics.delivery_table_rows.labels("outbox")._value.get() == len(kept)
    # The oldest purgeable rows left: the one shipped a week less five minutes ago, and so on.
    outbox_age = metrics.delivery_oldest_row_age.labels("outbox")._value.get()
    assert WEEK - timedelta(minutes=6) < timedelta(seconds=outbox_age) < WEEK
    inbox_age = metrics.delivery_oldest_row_age.labels("inbox")._value.get()
    assert FORTNIGHT - timedelta(hours=1, minutes=1) < timedelta(seconds=inbox_age) < FORTNIGHT
    assert metrics.delivery_retention.labels("inbox")._value.get() == FORTNIGHT.total_seconds()
    engine.dispose()


def _exam_completed(study: str) -> events_pb2.ExamCompleted:
    message = events_pb2.ExamCompleted(instance_count=1)
    message.context.study_instance_uid = study
    message.context.exam_id = str(uuid.uuid4())
    return message


def _consume_until(
    worker: ConsumerWorker, metrics: ServiceMetrics, topic: str, **want: int
) -> None:
    for _ in range(60):
        worker.run_once(1.0)
        if all(metrics.events_consumed.labels(topic, o)._value.get() >= n for o, n in want.items()):
            return
    raise AssertionError(f"{want} not consumed from {topic} in time")


def _on_fresh_topic(
    stack: tuple[str, EventBus], prefix: str
) -> tuple[EventBus, str, Engine, Table, Table]:
    """The stack's bus with a new topic (and its .dlq), and the delivery tables on its database."""
    url, bus = stack
    topic = f"{prefix}.{uuid.uuid4().hex[:10]}"
    bus.ensure_topics([topic, f"{topic}.dlq"])
    return bus, topic, *_schema(url)


def test_a_duplicate_delivered_within_the_inbox_retention_is_still_dropped(
    stack: tuple[str, EventBus],
) -> None:
    bus, topic, engine, outbox, inbox = _on_fresh_topic(stack, "test.retention")
    effects: list[str] = []

    def apply(_session: Any, _record: ReceivedEvent, event: CloudEvent) -> None:
        effects.append(event.id)

    metrics = ServiceMetrics("test")
    group = f"g-{uuid.uuid4().hex[:8]}"
    worker = ConsumerWorker(
        bus=bus,
        group=group,
        topics=[topic],
        handler=apply,
        sessions=session_factory(engine),
        inbox=inbox,
        metrics=metrics,
        retry_backoff=0,
    )
    event = wrap(_exam_completed("1.2.999.1"), source="test", key="1.2.999.1")
    expired = _record(engine, inbox, age=FORTNIGHT + timedelta(hours=1), group=group)
    try:
        publish(bus, topic, event)
        _consume_until(worker, metrics, topic, processed=1)
        # Thirteen days on, the purge takes the expired record but keeps this event's.
        later = datetime.now(UTC) + timedelta(days=13)
        purge = _retention(engine, outbox, inbox, clock=lambda: later)
        assert purge.purge_once() == Purged(outbox=0, inbox=1)
        assert _ids(engine, inbox) == {event.id} != {expired}

        publish(bus, topic, event)  # redelivered: a producer retry, or a group rewound
        _consume_until(worker, metrics, topic, processed=1, duplicate=1)
    finally:
        worker.close()
    assert effects == [event.id]
    # Past the retention the record goes: the horizon setting keeps copies from outliving it.
    beyond = datetime.now(UTC) + FORTNIGHT + timedelta(minutes=1)
    assert _retention(engine, outbox, inbox, clock=lambda: beyond).purge_once().inbox == 1
    engine.dispose()


_KILLED_PURGE = textwrap.dedent(
    """
    import sys, time
    from datetime import timedelta
    from sqlalchemy import MetaData, event
    from sqlalchemy.sql import Delete
    from sonobridge.common.db import create_db_engine
    from sonobridge.common.delivery import delivery_tables
    from sonobridge.common.metrics import ServiceMetrics
    from sonobridge.common.retention import DeliveryRetention

    url, marker = sys.argv[1], sys.argv[2]
    outbox, inbox = delivery_tables(MetaData())
    engine = create_db_engine(url)

    @event.listens_for(engine, "after_execute")
    def hang_after_the_delete(conn, statement, multiparams, params, options, result):
        if isinstance(statement, Delete):
            open(marker, "w").write(str(result.rowcount))  # deleted, not yet committed
            time.sleep(600)

    DeliveryRetention(
        engine, outbox, inbox, ServiceMetrics("child"),
        outbox_retention=timedelta(days=7), inbox_retention=timedelta(days=14), batch_size=3,
    ).purge_once()
    """
)


def test_a_purge_killed_mid_batch_loses_nothing(database_url: str, tmp_path: Path) -> None:
    engine, outbox, inbox = _schema(database_url)
    old = {
        _stage(engine, outbox, age=timedelta(days=20), shipped=timedelta(days=10)) for _ in range(4)
    }
    unshipped = _stage(engine, outbox, age=timedelta(days=20), shipped=None)
    with engine.connect() as conn:
        before = {row.event_id: row.data for row in conn.execute(select(outbox))}
    marker = tmp_path / "deleted"
    # One batch deleted inside the open transaction, not yet committed, when the kill comes.
    assert kill_at_marker(_KILLED_PURGE, database_url, str(marker), marker=marker) == "3"

    with engine.connect() as conn:
        after = {row.event_id: row.data for row in conn.execute(select(outbox))}
    assert after == before  # the killed batch of three rolled back, every byte kept
    retention = _retention(engine, outbox, inbox, batch_size=3)
    while retention.purge_once().outbox:
        pass
    assert _ids(engine, outbox) == {unshipped}
    assert old.isdisjoint(_ids(engine, outbox))
    engine.dispose()


def _wait_for(done: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_relay_and_purge_at_once_neither_lose_nor_double_an_event(
    stack: tuple[str, EventBus],
) -> None:
    bus, topic, engine, outbox, inbox = _on_fresh_topic(stack, "test.retention.race")
    metrics = ServiceMetrics("test")
    relay = OutboxRelay(engine, outbox, bus, metrics, batch_size=10)
    # No retention at all: every shipped row is due the moment the relay commits it.
    retention = _retention(engine, outbox, inbox, batch_size=7, outbox_retention=timedelta(0))
    staged: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        for n in range(40):
            with session_factory(engine).begin() as session:
                for _ in range(5):
                    event = wrap(_exam_completed(f"1.2.999.{n}"), source="test", key=str(n))
                    Outbox(outbox).add(session, topic, event)
                    staged.append(event.id)

    def purge() -> None:
        while not stop.is_set():
            retention.purge_once()

    workers = [
        threading.Thread(target=relay.run, args=(stop, 0.01, 0.0)),
        threading.Thread(target=purge),
    ]
    for worker in workers:
        worker.start()
    try:
        produce()
        _wait_for(lambda: _unshipped(engine, outbox) == 0, 60)
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
    # The purge took rows while the relay shipped, not only once it was done.
    assert retention.metrics.delivery_rows_purged.labels("outbox")._value.get() > 0
    while retention.purge_once().outbox:
        pass

    assert _unshipped(engine, outbox) == 0 and _ids(engine, outbox) == set()
    assert metrics.events_published.labels(topic)._value.get() == len(staged) == 200
    assert retention.metrics.delivery_rows_purged.labels("outbox")._value.get() == 200
    received = _read_topic(bus, topic, len(staged))
    assert Counter(received) == Counter(staged)  # each event once: none lost, none doubled


def _unshipped(engine: Engine, outbox: Table) -> int:
    with engine.connect() as conn:
        count = select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        return int(conn.execute(count).scalar_one())


def _read_topic(bus: EventBus, topic: str, expected: int) -> list[str]:
    """Every event id on `topic`, read by a fresh group, plus a last poll for any extra copy."""
    subscription = bus.subscribe(f"g-{uuid.uuid4().hex[:8]}", [topic])
    received: list[str] = []
    try:
        for _ in range(60):
            received += [record.cloud_event().id for record in subscription.poll(1.0)]
            if len(received) >= expected:
                break
        received += [record.cloud_event().id for record in subscription.poll(2.0)]
    finally:
        subscription.close()
    return received
