"""Kafka adapter of the event bus (kafka-python): idempotent producer, manual-commit consumers."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata, TopicPartition

from sonobridge.common.bus.ports import Headers, ReceivedEvent, Record

log = logging.getLogger(__name__)


class KafkaEventBus:
    """Publish with acks=all and idempotence; subscribe as a consumer group with manual commit."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "sonobridge",
        request_timeout_ms: int = 30_000,
        partitions: int = 3,
        replication_factor: int = 1,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self.partitions = partitions
        self.replication_factor = replication_factor
        self._producer: KafkaProducer | None = None
        self._probe: KafkaConsumer | None = None
        self._lock = threading.Lock()

    def _get_producer(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    client_id=f"{self.client_id}-producer",
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=2,
                    request_timeout_ms=self.request_timeout_ms,
                )
            return self._producer

    def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        """Append a record and wait for the broker's acknowledgement from all in-sync replicas."""
        future = self._get_producer().send(topic, key=key, value=value, headers=headers)
        future.get(timeout=self.request_timeout_ms / 1000)

    def send_many(self, records: Sequence[Record]) -> None:
        """Append records in order, then wait for every acknowledgement (one round trip, not N).

        The idempotent producer keeps a partition's records in order across retries; if any
        record fails, the error is raised and the caller sends the batch again (consumers drop
        the duplicates by event id).
        """
        producer = self._get_producer()
        futures = [
            producer.send(topic, key=key, value=value, headers=headers)
            for topic, key, value, headers in records
        ]
        producer.flush(timeout=self.request_timeout_ms / 1000)
        for future in futures:
            future.get(timeout=self.request_timeout_ms / 1000)

    def subscribe(self, group: str, topics: Sequence[str]) -> KafkaSubscription:
        """Join `group` on `topics`."""
        return KafkaSubscription(self, group, list(topics))

    def ensure_topics(self, topics: Sequence[str]) -> None:
        """Create missing topics with this bus's partition count and replication factor."""
        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, client_id=f"{self.client_id}-admin"
        )
        try:
            existing = set(admin.list_topics())
            wanted = [
                NewTopic(t, self.partitions, self.replication_factor)
                for t in topics
                if t not in existing
            ]
            if wanted:
                # Another replica may create them between list and create.
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(wanted)
        finally:
            admin.close()

    def check(self) -> None:
        """Raise if no broker answers a metadata request."""
        with self._lock:
            # One long-lived probe client: readiness is polled every few seconds.
            if self._probe is None:
                self._probe = KafkaConsumer(
                    bootstrap_servers=self.bootstrap_servers,
                    client_id=f"{self.client_id}-probe",
                    request_timeout_ms=5000,
                    bootstrap_timeout_ms=5000,
                )
            probe = self._probe
        probe.topics()

    def close(self) -> None:
        """Flush and close the producer."""
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=10)
                self._producer = None
            if self._probe is not None:
                self._probe.close()
                self._probe = None


class KafkaSubscription:
    """A consumer-group member; offsets are committed only after each record's effects commit."""

    def __init__(self, bus: KafkaEventBus, group: str, topics: list[str]) -> None:
        self.group = group
        self.topics = topics
        self._consumer = KafkaConsumer(
            *topics,
            bootstrap_servers=bus.bootstrap_servers,
            client_id=f"{bus.client_id}-{group}",
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            # A topic created after the group joined (first deployment, a new event type) is only
            # assigned at the next metadata refresh; the 5-minute default would stall it that long.
            metadata_max_age_ms=5000,
            request_timeout_ms=max(bus.request_timeout_ms, 40_000),
        )

    def poll(self, timeout: float, max_records: int = 100) -> list[ReceivedEvent]:
        """Return the next records in per-partition order."""
        return received(
            self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        )

    def commit(self, record: ReceivedEvent) -> None:
        """Commit the offset after `record` synchronously."""
        self._consumer.commit(
            {
                TopicPartition(record.topic, record.partition): OffsetAndMetadata(
                    record.offset + 1, "", -1
                )
            }
        )

    def lag(self) -> dict[str, int]:
        """Return records between this member's position and the log end, per topic."""
        assigned = list(self._consumer.assignment())
        if not assigned:
            return {}
        try:
            ends = self._consumer.end_offsets(assigned)
        except KafkaError as exc:
            log.warning("cannot read end offsets: %s", exc)
            return {}
        lag: dict[str, int] = {}
        for tp in assigned:
            behind = max(0, ends.get(tp, 0) - self._consumer.position(tp))
            lag[tp.topic] = lag.get(tp.topic, 0) + behind
        return lag

    def close(self) -> None:
        """Leave the group without an auto-commit."""
        self._consumer.close(autocommit=False)


def received(batches: Mapping[TopicPartition, Sequence[Any]]) -> list[ReceivedEvent]:
    """Return a KafkaConsumer.poll() answer as events, in per-partition order."""
    return [
        ReceivedEvent(
            topic=tp.topic,
            partition=tp.partition,
            offset=msg.offset,
            key=msg.key,
            value=msg.value or b"",
            headers=[(name, value or b"") for name, value in (msg.headers or [])],
        )
        for tp, messages in batches.items()
        for msg in messages
    ]
