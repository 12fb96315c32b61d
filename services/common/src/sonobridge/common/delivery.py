"""Reliable delivery: transactional outbox + relay, idempotent inbox, retries and dead-lettering."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    String,
    Table,
    bindparam,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import Insert

from sonobridge.api.events.v1.topics import topic_for
from sonobridge.common.bus.ports import (
    EventBus,
    ReceivedEvent,
    Subscription,
    dlq_topic,
    publish_all,
)
from sonobridge.common.db import UtcDateTime
from sonobridge.common.envelope import CloudEvent, ProtoMessage, UnreadableEvent, wrap
from sonobridge.common.lanes import Lanes
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.periodic import Periodic

log = logging.getLogger(__name__)


class PermanentFailure(Exception):
    """A handler error that retrying cannot fix: the event goes straight to dead-letter."""


def delivery_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Define the outbox and inbox tables on a service's metadata (its migrations create them)."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("topic", String(255), nullable=False),
        Column("key", String(255), nullable=False),
        Column("source", String(255), nullable=False),
        Column("type", String(255), nullable=False),
        Column("time", UtcDateTime, nullable=False),
        Column("data", LargeBinary, nullable=False),
        Column("created_at", UtcDateTime, nullable=False, server_default=func.now()),
        Column("published_at", UtcDateTime, nullable=True, index=True),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer_group", String(255), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("topic", String(255), nullable=False),
        Column("type", String(255), nullable=False),
        # Indexed for the retention purge, which deletes the oldest records first.
        Column("processed_at", UtcDateTime, nullable=False, index=True),
    )
    return outbox, inbox


_COMMITTED = "sonobridge.outbox.committed"
_STAGED = "sonobridge.outbox.staged"


def committed_signal(table: Table) -> threading.Event:
    """The flag raised whenever a transaction that added rows to the outbox `table` commits."""
    signal: threading.Event | None = table.info.get(_COMMITTED)
    if signal is None:  # built once: this runs after every commit that staged an event
        signal = table.info.setdefault(_COMMITTED, threading.Event())
    return signal


@event.listens_for(Session, "after_commit")
def _wake_relays(session: Session) -> None:
    # The relay in this process ships at once instead of at its next poll (up to one interval
    # per hop, two hops from an upload to its AI result); the poll still covers other processes.
    for table in session.info.pop(_STAGED, {}).values():
        signal = committed_signal(table)
        if not signal.is_set():  # already raised: the relay has not yet taken the last one
            signal.set()


@event.listens_for(Session, "after_rollback")
def _forget_staged(session: Session) -> None:
    session.info.pop(_STAGED, None)


class Outbox:
    """Adds events to the outbox inside the caller's transaction."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def add(self, session: Session, topic: str, event: CloudEvent) -> None:
        """Stage `event` for `topic`; it ships only if the surrounding transaction commits."""
        self.staged(session)
        session.execute(self.row(topic, event))

    def staged(self, session: Session) -> None:
        """Note that `session` stages events here, so its commit wakes this outbox's relay."""
        session.info.setdefault(_STAGED, {})[id(self.table)] = self.table

    def row(self, topic: str, event: CloudEvent) -> Insert:
        """Return the insert that stages `event`, for a caller that batches its statements."""
        return insert(self.table).values(**self.row_values(topic, event))

    def row_values(self, topic: str, event: CloudEvent) -> dict[str, Any]:
        """Return the outbox row's columns for `event`, for a caller that inserts them itself."""
        return {
            "event_id": event.id,
            "topic": topic,
            "key": event.key,
            "source": event.source,
            "type": event.type,
            "time": event.time,
            "data": event.data,
        }

    def emit(self, session: Session, message: ProtoMessage, *, source: str, key: str) -> CloudEvent:
        """Wrap an event message and stage it on its registered topic."""
        event = wrap(message, source=source, key=key)
        self.add(session, topic_for(message), event)  # type: ignore[arg-type]
        return event

    def emit_row(self, message: ProtoMessage, *, source: str, key: str) -> dict[str, Any]:
        """Wrap an event message; return the outbox row that stages it on its registered topic."""
        return self.row_values(topic_for(message), wrap(message, source=source, key=key))  # type: ignore[arg-type]


class OutboxRelay:
    """Ships committed outbox rows to the bus in order; a crash before marking re-ships them."""

    def __init__(
        self,
        engine: Engine,
        table: Table,
        bus: EventBus,
        metrics: ServiceMetrics,
        batch_size: int = 100,
    ) -> None:
        self.engine = engine
        self.table = table
        self.bus = bus
        self.metrics = metrics
        self.batch_size = batch_size
        # Built once: the relay runs after every commit that stages an event, and building
        # these per pass cost more CPU than running them.
        unpublished = table.c.published_at.is_(None)
        # SKIP LOCKED lets several relay replicas share the work on PostgreSQL.
        self._batch = (
            select(table)
            .where(unpublished)
            .order_by(table.c.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
        marked = {"published_at": bindparam("at", type_=table.c.published_at.type)}
        self._mark = (
            update(table).where(table.c.id.in_(bindparam("ids", expanding=True))).values(marked)
        )
        # PostgreSQL takes a batch and marks it in one statement (one round trip instead of a
        # select and an update); the rows stay locked and the marks uncommitted until every
        # send returned, so a failed send or a crash leaves them to be shipped again.
        self._take = (
            update(table)
            .where(table.c.id.in_(self._batch.with_only_columns(table.c.id)))
            .values(marked)
            .returning(*table.c)
        )
        self._take_and_mark = engine.dialect.name == "postgresql"
        self._pending = select(func.count()).select_from(table).where(unpublished)

    def ship_once(self) -> int:
        """Publish one batch of pending rows; return how many were shipped."""
        with self.engine.begin() as conn:
            if self._take_and_mark:
                taken = conn.execute(self._take, {"at": datetime.now(UTC)}).fetchall()
                # RETURNING follows no ORDER BY: the outbox's order is its ids'.
                rows = sorted(taken, key=lambda row: int(row.id))
                self._publish(rows)
            else:
                rows = list(conn.execute(self._batch))
                self._publish(rows)
                if rows:
                    # One update after every send: on SQLite the first write takes the write
                    # lock, which the bus's sends (an fsync each on the single node) must not
                    # hold up.
                    ids = [row.id for row in rows]
                    conn.execute(self._mark, {"ids": ids, "at": datetime.now(UTC)})
            # A batch short of full took every row that was waiting (but those another replica
            # holds): count only behind a full one.
            pending = (
                conn.execute(self._pending).scalar_one() if len(rows) == self.batch_size else 0
            )
        self.metrics.outbox_pending.set(pending)
        return len(rows)

    def _publish(self, rows: Sequence[Row[Any]]) -> None:
        """Send the rows' events in order, as one append where the bus can."""
        publish_all(
            self.bus,
            [
                (
                    row.topic,
                    CloudEvent(
                        id=row.event_id,
                        source=row.source,
                        type=row.type,
                        time=row.time,
                        key=row.key,
                        data=row.data,
                    ),
                )
                for row in rows
            ],
        )
        for row in rows:
            self.metrics.events_published.labels(row.topic).inc()

    def run(self, stop: threading.Event, interval: float = 0.2, linger: float = 0.02) -> None:
        """Ship until `stop` is set; bus outages are retried, never dropped.

        The first commit after a quiet spell is shipped at once; during a stream of commits
        the relay ships what `linger` seconds gathered in one pass, not one pass per commit.
        """
        Periodic(
            "outbox relay",
            self.ship_once,
            interval,
            retry_after=min(5.0, interval * 10),
            # A full batch means more are waiting: ship the next one at once.
            again=lambda shipped: shipped == self.batch_size,
            wake=committed_signal(self.table),
            linger=linger,
        )(stop)


EventHandler = Callable[[Session, ReceivedEvent, CloudEvent], None]
"""Apply one event's effects in the given session (the worker commits it)."""

EventCommit = Callable[[Session], None]
"""Record effects worked out before the transaction, in the given session."""

EventStage = Callable[[ReceivedEvent, CloudEvent], EventCommit]
"""Do an event's slow work outside any transaction; return what records its effects."""


class ConsumerWorker:
    """Consume `topics` as `group`: dedupe by event id, retry, dead-letter, then commit."""

    def __init__(
        self,
        *,
        bus: EventBus,
        group: str,
        topics: Sequence[str],
        handler: EventHandler | None = None,
        sessions: sessionmaker[Session],
        inbox: Table,
        metrics: ServiceMetrics,
        max_attempts: int = 5,
        retry_backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        stage: EventStage | None = None,
        lanes: int = 1,
    ) -> None:
        if (handler is None) == (stage is None):
            raise ValueError("give the worker a handler or a stage, not both")
        self.bus = bus
        self.group = group
        self.topics = list(topics)
        self.handler = handler
        self.stage = stage
        self.sessions = sessions
        self.inbox = inbox
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self._sleep = sleep
        # Several lanes let one slow exam's work overlap the next exams' (see Lanes).
        self.lanes = lanes
        self._subscription: Subscription | None = None

    @property
    def subscription(self) -> Subscription:
        """The group membership, joined on first use."""
        if self._subscription is None:
            self._subscription = self.bus.subscribe(self.group, self.topics)
        return self._subscription

    def _seen(self, session: Session, event_id: str) -> bool:
        found = session.execute(
            select(self.inbox.c.event_id).where(
                self.inbox.c.consumer_group == self.group,
                self.inbox.c.event_id == event_id,
            )
        ).first()
        return found is not None

    def _apply(self, record: ReceivedEvent, event: CloudEvent) -> bool:
        """Run the handler and record the event id in one transaction; False if seen before."""
        handler = self.handler
        if self.stage is not None:
            # The slow work (a whole exam's inference) runs before the write transaction, so
            # SQLite's single write lock is not held across it; the inbox row and the effects
            # still commit together below, and a redelivery seen meanwhile records nothing.
            with self.sessions() as session:
                if self._seen(session, event.id):
                    return False
            commit = self.stage(record, event)

            def handler(session: Session, _record: ReceivedEvent, _event: CloudEvent) -> None:
                commit(session)

        assert handler is not None
        with self.sessions.begin() as session:
            if self._seen(session, event.id):
                return False
            session.execute(
                insert(self.inbox).values(
                    consumer_group=self.group,
                    event_id=event.id,
                    topic=record.topic,
                    type=event.type,
                    processed_at=datetime.now(UTC),
                )
            )
            handler(session, record, event)
        return True

    def handle(self, record: ReceivedEvent) -> str:
        """Process one record to a final outcome, then commit it."""
        outcome = self.process(record)
        self.subscription.commit(record)
        return outcome

    def process(self, record: ReceivedEvent) -> str:
        """Take one record to a final outcome: processed, duplicate or dead_lettered."""
        attempts = 0
        while True:
            attempts += 1
            try:
                event = record.cloud_event()
                applied = self._apply(record, event)
            except IntegrityError:
                # A concurrent delivery of the same event won the inbox insert.
                outcome = "duplicate"
                break
            except (UnreadableEvent, PermanentFailure) as exc:
                self._dead_letter(record, exc, attempts)
                outcome = "dead_lettered"
                break
            except Exception as exc:
                self.metrics.events_consumed.labels(record.topic, "failed").inc()
                if attempts >= self.max_attempts:
                    self._dead_letter(record, exc, attempts)
                    outcome = "dead_lettered"
                    break
                log.warning(
                    "handler failed (attempt %d/%d) on %s@%d: %s",
                    attempts,
                    self.max_attempts,
                    record.topic,
                    record.offset,
                    exc,
                )
                self._sleep(self.retry_backoff * 2 ** (attempts - 1))
                continue
            outcome = "processed" if applied else "duplicate"
            break
        if outcome != "dead_lettered":
            self.metrics.events_consumed.labels(record.topic, outcome).inc()
        return outcome

    def _dead_letter(self, record: ReceivedEvent, error: Exception, attempts: int) -> None:
        log.error(
            "dead-lettering %s@%d after %d attempt(s): %s",
            record.topic,
            record.offset,
            attempts,
            error,
        )
        headers = [
            *record.headers,
            ("dlq_error", f"{type(error).__name__}: {error}"[:2000].encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_source_topic", record.topic.encode()),
            ("dlq_source_partition", str(record.partition).encode()),
            ("dlq_source_offset", str(record.offset).encode()),
            ("dlq_consumer_group", self.group.encode()),
        ]
        self.bus.send(dlq_topic(record.topic), record.key, record.value, headers)
        self.metrics.events_dead_lettered.labels(record.topic).inc()

    def run_once(self, timeout: float = 0.5) -> int:
        """Poll once and handle what arrived; return the number of records handled."""
        records = self.subscription.poll(timeout)
        for record in records:
            self.handle(record)
        self._report_lag()
        return len(records)

    def _report_lag(self) -> None:
        for topic, lag in self.subscription.lag().items():
            self.metrics.consumer_lag.labels(topic).set(lag)

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set; errors outside a handler are logged and retried."""
        try:
            while not stop.is_set():
                try:
                    if self.lanes > 1:
                        self._run_lanes(stop)
                    else:
                        self.run_once()
                except Exception:
                    log.exception("consumer %s failed; rejoining", self.group)
                    self.close()
                    stop.wait(2.0)
        finally:
            self.close()

    def _run_lanes(self, stop: threading.Event, timeout: float = 0.5) -> None:
        """Poll and commit here while the lanes handle records; return once `stop` is set."""
        lanes = Lanes(self.process, self.lanes)
        lanes.start(self.group)
        try:
            while not stop.is_set():
                lanes.settle(self.subscription, wait=0.0 if lanes.room() else timeout)
                if lanes.room():
                    for record in self.subscription.poll(timeout, max_records=lanes.room()):
                        lanes.hand_out(record)
                    self._report_lag()
        finally:
            # Records in flight finish; those not begun are left for the next run.
            lanes.stop()
        lanes.settle(self.subscription)

    def close(self) -> None:
        """Leave the group."""
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
