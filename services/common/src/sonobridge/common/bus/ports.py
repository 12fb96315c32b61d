"""The event bus port: durable publish, consumer-group subscriptions with manual commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from sonobridge.common.envelope import CloudEvent

Headers = list[tuple[str, bytes]]
Record = tuple[str, bytes | None, bytes, Headers]
"""One record to send: (topic, key, value, headers)."""


def dlq_topic(topic: str) -> str:
    """Return the dead-letter topic that belongs to `topic`."""
    return f"{topic}.dlq"


@dataclass(frozen=True)
class ReceivedEvent:
    """A record as delivered to a consumer: its position plus the raw key, value and headers."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)

    def cloud_event(self) -> CloudEvent:
        """Parse the CloudEvents envelope; raises UnreadableEvent for foreign records."""
        return CloudEvent.from_record(self.key, self.value, self.headers)


class Subscription(Protocol):
    """One consumer in a group: poll, then commit each record once its effects are durable."""

    def poll(self, timeout: float, max_records: int = 100) -> list[ReceivedEvent]:
        """Return the next records (per-partition order), waiting up to `timeout` seconds."""
        ...

    def commit(self, record: ReceivedEvent) -> None:
        """Mark `record` and everything before it in its partition as done for the group."""
        ...

    def lag(self) -> dict[str, int]:
        """Return, per topic, how many records the group has not yet been handed."""
        ...

    def close(self) -> None:
        """Leave the group without committing anything further."""
        ...


class EventBus(Protocol):
    """Durable, keyed, ordered-per-key event log."""

    def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        """Append a record; returns only once the log has it durably."""
        ...

    def subscribe(self, group: str, topics: Sequence[str]) -> Subscription:
        """Join consumer group `group` on `topics`, resuming from its committed offsets."""
        ...

    def ensure_topics(self, topics: Sequence[str]) -> None:
        """Create the topics if they do not exist."""
        ...

    def check(self) -> None:
        """Raise if the bus is unreachable (for readiness)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class BatchSender(Protocol):
    """A bus that appends several records durably at once (one commit and sync for all)."""

    def send_many(self, records: Sequence[Record]) -> None:
        """Append the records in order; returns only once the log has them all durably."""
        ...


def publish_all(bus: EventBus, events: Sequence[tuple[str, CloudEvent]]) -> None:
    """Send (topic, event) pairs in order, in one append where the bus can."""
    records = [
        (topic, e.key.encode() if e.key else None, e.data, e.headers()) for topic, e in events
    ]
    if isinstance(bus, BatchSender):
        bus.send_many(records)
        return
    for record in records:
        bus.send(*record)


def publish(bus: EventBus, topic: str, event: CloudEvent) -> None:
    """Send a CloudEvent in binary mode, keyed for per-exam ordering."""
    bus.send(topic, event.key.encode() if event.key else None, event.data, event.headers())
