"""Retention of the embedded event log on real SQLite files: what goes and stays, crashes, races."""

from __future__ import annotations

import sqlite3
import textwrap
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from killed_child import kill_at_marker
from sqlalchemy import MetaData, insert, select

from sonobridge.common.bus.embedded import EmbeddedEventBus, EmbeddedSubscription
from sonobridge.common.bus.retention import EventLogRetention
from sonobridge.common.db import create_db_engine
from sonobridge.common.delivery import delivery_tables
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.retention import DeliveryRetention
from sonobridge.common.settings import DeliverySettings

DAY = timedelta(days=1)
FORTNIGHT = timedelta(days=14)


def _publish(bus: EmbeddedEventBus, topic: str, count: int) -> list[bytes]:
    values = [uuid.uuid4().hex.encode() for _ in range(count)]
    bus.send_many([(topic, b"k", value, []) for value in values])
    return values


def _age(path: Path, topic: str, offsets: range, by: timedelta) -> None:
    """Make records older, as if appended `by` earlier."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            'UPDATE records SET appended_at = appended_at - ? WHERE topic = ? AND "offset" >= ? '
            'AND "offset" < ?',
            (by.total_seconds(), topic, offsets.start, offsets.stop),
        )


def _offsets(path: Path, topic: str) -> list[int]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute('SELECT "offset" FROM records WHERE topic = ? ORDER BY 1', (topic,))
        return [int(row[0]) for row in rows]


def _consume(subscription: EmbeddedSubscription, count: int, *, commit: bool = True) -> list[bytes]:
    """Read exactly `count` records, committing each unless told not to."""
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < count and time.monotonic() < deadline:
        for record in subscription.poll(0.5, max_records=count - len(got)):
            got.append(record.value)
            if commit:
                subscription.commit(record)
    return got


def _drain(retention: EventLogRetention) -> None:
    while any(retention.purge_once().values()):
        pass


def _retention(path: Path, **kw: object) -> EventLogRetention:
    kw.setdefault("retention", FORTNIGHT)
    return EventLogRetention(path, ServiceMetrics("test"), **kw)  # type: ignore[arg-type]


def test_old_consumed_records_go_unconsumed_and_fresh_ones_stay(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    bus = EmbeddedEventBus(path)
    done, lagging = bus.subscribe("done", ["a"]), bus.subscribe("lagging", ["a"])
    idle = bus.subscribe("idle", ["b"])  # joined "b", never committed anything
    a_values = _publish(bus, "a", 10)
    _publish(bus, "b", 4)
    _publish(bus, "c", 3)  # a topic no group has joined
    _publish(bus, "c.dlq", 2)  # dead letters: no group reads them either
    for topic, count in (("a", 10), ("b", 4), ("c", 3), ("c.dlq", 2)):
        _age(path, topic, range(count), FORTNIGHT + DAY)
    a_values += _publish(bus, "a", 5)  # fresh: offsets 10..14
    _consume(done, 15)
    lagging_values = _consume(lagging, 7)  # committed up to offset 6, then stopped
    retention = _retention(path, batch_size=4)

    _drain(retention)
    # "a": only what every group is past and old; the lagging group's next record on stays.
    # "b": a group joined and never committed: every record stays, however old.
    # "c": no group: old records go, but the newest stays (the next offset counts from it).
    assert _offsets(path, "a") == list(range(7, 15))
    assert _offsets(path, "b") == [0, 1, 2, 3]
    assert _offsets(path, "c") == [2]
    assert _offsets(path, "c.dlq") == [0, 1]  # kept for an operator, however old
    metrics = retention.metrics
    assert metrics.event_log_records_purged.labels("a")._value.get() == 7
    assert metrics.event_log_records.labels("b")._value.get() == 4
    assert (
        metrics.event_log_oldest_record_age.labels("b")._value.get()
        > (FORTNIGHT + DAY).total_seconds()
    )
    assert metrics.event_log_size.labels("used")._value.get() > 0

    # The lagging group resumes and finds every record it had not committed, old or fresh.
    lagging.close()
    resumed = bus.subscribe("lagging", ["a"])
    assert lagging_values + _consume(resumed, 8) == a_values
    _drain(retention)
    assert _offsets(path, "a") == [10, 11, 12, 13, 14]  # the old ones went; the fresh stay
    for subscription in (done, resumed, idle):
        subscription.close()
    retention.close()
    bus.close()


def test_a_group_restarted_after_a_purge_resumes_where_it_committed(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    bus = EmbeddedEventBus(path)
    group = bus.subscribe("g", ["t"])
    _publish(bus, "t", 10)
    _consume(group, 10)
    group.close()
    _age(path, "t", range(10), FORTNIGHT + DAY)
    retention = _retention(path, batch_size=3)
    _drain(retention)
    assert _offsets(path, "t") == [9]
    later = _publish(bus, "t", 3)

    restarted = bus.subscribe("g", ["t"])
    records = []
    while polled := restarted.poll(0.5):
        records += polled
    # Nothing handed again, nothing skipped: the offsets go on from 10, not from 0 again.
    assert [(r.offset, r.value) for r in records] == list(zip(range(10, 13), later, strict=True))
    # A group new to the topic starts from the earliest record kept.
    new = bus.subscribe("new", ["t"])
    assert [r.offset for r in new.poll(0.5)] == [9, 10, 11, 12]
    for subscription in (restarted, new):
        subscription.close()
    retention.close()
    bus.close()


def test_publish_consume_and_purge_at_once_deliver_each_event_once_per_group(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.sqlite3"
    bus = EmbeddedEventBus(path)
    groups = {g: bus.subscribe(g, ["t"]) for g in ("g1", "g2", "slow")}
    # No retention at all: a record is due as soon as every group has committed past it.
    retention = _retention(path, retention=timedelta(0), batch_size=7)
    sent: list[bytes] = []
    received: dict[str, list[bytes]] = {g: [] for g in groups}
    stop = threading.Event()

    def produce() -> None:
        for _ in range(60):
            sent.extend(_publish(bus, "t", 5))
            time.sleep(0.002)

    def consume(group: str) -> None:
        # The slow group trails the others: the purge waits for its commits, batch by batch.
        pause, most = (0.01, 3) if group == "slow" else (0.0, 9)
        deadline = time.monotonic() + 60
        while len(received[group]) < 300 and time.monotonic() < deadline:
            for record in groups[group].poll(0.2, max_records=most):
                received[group].append(record.value)
                groups[group].commit(record)
            time.sleep(pause)

    def purge() -> None:
        while not stop.is_set():
            retention.purge_once()

    workers = [threading.Thread(target=produce), threading.Thread(target=purge)]
    workers += [threading.Thread(target=consume, args=(g,)) for g in groups]
    for worker in workers:
        worker.start()
    for worker in workers[2:] + workers[:1]:
        worker.join(90)
    purged_while_running = retention.metrics.event_log_records_purged.labels("t")._value.get()
    stop.set()
    workers[1].join(30)
    _drain(retention)

    assert len(sent) == 300
    for group, subscription in groups.items():
        assert subscription.poll(0.2) == []
        assert Counter(received[group]) == Counter(sent), group  # each event exactly once
    assert purged_while_running > 0  # the purge took records while groups were reading
    assert _offsets(path, "t") == [299]
    assert retention.metrics.event_log_records_purged.labels("t")._value.get() == 299
    for subscription in groups.values():
        subscription.close()
    retention.close()
    bus.close()


_KILLED_PURGE = textwrap.dedent(
    """
    import sys, time
    from datetime import timedelta
    from pathlib import Path
    from sonobridge.common.bus.retention import EventLogRetention
    from sonobridge.common.metrics import ServiceMetrics

    path, marker = Path(sys.argv[1]), sys.argv[2]
    retention = EventLogRetention(
        path, ServiceMetrics("child"), retention=timedelta(days=14), batch_size=3
    )
    conn = retention._conn

    def hang_before_the_commit(statement):
        if statement == "COMMIT" and conn.total_changes:
            open(marker, "w").write(str(conn.total_changes))  # deleted, not yet committed
            time.sleep(600)

    conn.set_trace_callback(hang_before_the_commit)
    retention.purge_once()
    """
)


def test_a_purge_killed_mid_batch_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    bus = EmbeddedEventBus(path)
    group = bus.subscribe("g", ["t"])
    values = _publish(bus, "t", 5)
    _consume(group, 5)
    _age(path, "t", range(5), FORTNIGHT + DAY)
    marker = tmp_path / "deleted"
    # One batch deleted inside the open transaction, not yet committed, when the kill comes.
    assert kill_at_marker(_KILLED_PURGE, str(path), str(marker), marker=marker) == "3"

    # The killed batch rolled back: every record is there, and readable by a new group.
    assert _offsets(path, "t") == [0, 1, 2, 3, 4]
    new = bus.subscribe("new", ["t"])
    assert _consume(new, 5) == values
    retention = _retention(path, batch_size=3)
    _drain(retention)  # and the write lock the child held is free again
    assert _offsets(path, "t") == [4]
    for subscription in (group, new):
        subscription.close()
    retention.close()
    bus.close()


def test_the_log_retention_defaults_to_the_redelivery_horizon_and_may_not_exceed_it() -> None:
    delivery = DeliverySettings()
    assert delivery.event_log_retention() == timedelta(days=delivery.redelivery_horizon_days)
    longer = DeliverySettings(redelivery_horizon_days=30, inbox_retention_days=30)
    assert longer.event_log_retention() == timedelta(days=30)
    assert DeliverySettings(event_log_retention_days=3).event_log_retention() == 3 * DAY
    with pytest.raises(ValueError, match="event_log_retention_days"):
        DeliverySettings(event_log_retention_days=20, redelivery_horizon_days=14)


def test_a_group_reading_from_the_earliest_record_finds_each_ones_inbox_entry(
    tmp_path: Path,
) -> None:
    """Both retentions at their defaults: every record still in the log has its inbox entry.

    An entry is written after its record was appended, so it is no older than the record;
    the log keeps a fully consumed record for at most the horizon, the inbox its entries for
    at least the horizon. A group that lost its offsets and reads from the earliest record
    therefore drops each as a duplicate instead of processing it again.
    """
    delivery = DeliverySettings()
    path = tmp_path / "events.sqlite3"
    bus = EmbeddedEventBus(path)
    group = bus.subscribe("g", ["t"])
    # One event every 12 hours over 30 days, each processed a minute after it was appended.
    values = _publish(bus, "t", 60)
    _consume(group, 60)
    now = time.time()

    def appended(offset: int) -> float:
        return now - ((60 - offset) * 12 - 6) * 3600  # 6 h to 29 d 18 h old

    with sqlite3.connect(path) as conn:
        for offset in range(60):
            conn.execute(
                'UPDATE records SET appended_at = ? WHERE topic = ? AND "offset" = ?',
                (appended(offset), "t", offset),
            )
    outbox, inbox = delivery_tables(metadata := MetaData())
    engine = create_db_engine(f"sqlite:///{tmp_path / 'service.sqlite3'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        for offset, value in enumerate(values):
            processed = datetime.fromtimestamp(appended(offset), UTC) + timedelta(minutes=1)
            conn.execute(
                insert(inbox).values(
                    consumer_group="g",
                    event_id=value.decode(),
                    topic="t",
                    type="t",
                    processed_at=processed,
                )
            )
    inbox_retention = DeliveryRetention(
        engine,
        outbox,
        inbox,
        ServiceMetrics("svc"),
        outbox_retention=timedelta(days=delivery.outbox_retention_days),
        inbox_retention=timedelta(days=delivery.inbox_retention_days),
    )
    while inbox_retention.purge_once().inbox:
        pass
    log_retention = _retention(path, retention=delivery.event_log_retention())
    _drain(log_retention)

    with engine.connect() as conn:
        entries = set(conn.execute(select(inbox.c.event_id)).scalars())
    reset = bus.subscribe("reset", ["t"])
    kept = _consume(reset, 28, commit=False)
    assert len(kept) == 28 and reset.poll(0.2) == []  # those younger than 14 days, two a day
    assert {value.decode() for value in kept} <= entries
    for subscription in (group, reset):
        subscription.close()
    log_retention.close()
    engine.dispose()
    bus.close()
