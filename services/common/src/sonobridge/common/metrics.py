"""The metrics every service exports, each service in its own registry (see docs/metrics.md)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServiceMetrics:
    """Plumbing metrics named `sonobridge_<service>_...`; services add their own to `registry`."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        # One registry per service: the single-node edition runs several services in one process.
        self.service = service
        self.registry = registry or CollectorRegistry()
        self.http_requests = self.counter(
            "http_requests", "REST requests served.", ["method", "route", "status"]
        )
        self.http_latency = self.histogram(
            "http_request_duration_seconds", "REST request latency.", ["method", "route"]
        )
        self.grpc_requests = self.counter("grpc_requests", "gRPC calls served.", ["method", "code"])
        self.events_published = self.counter(
            "events_published", "Events shipped by the outbox relay.", ["topic"]
        )
        self.events_consumed = self.counter(
            "events_consumed", "Events handled, by outcome.", ["topic", "outcome"]
        )
        self.events_dead_lettered = self.counter(
            "events_dead_lettered", "Events moved to the dead-letter topic.", ["topic"]
        )
        self.consumer_lag = self.gauge(
            "consumer_lag_messages", "Messages behind the log end.", ["topic"]
        )
        self.outbox_pending = self.gauge("outbox_pending_events", "Outbox rows not yet shipped.")
        self.delivery_rows_purged = self.counter(
            "delivery_rows_purged", "Outbox and inbox rows deleted by retention.", ["table"]
        )
        self.delivery_table_rows = self.gauge(
            "delivery_table_rows", "Rows in the outbox or inbox table.", ["table"]
        )
        self.delivery_oldest_row_age = self.gauge(
            "delivery_oldest_row_age_seconds",
            "Age of the oldest row retention may purge (shipped outbox row, inbox record).",
            ["table"],
        )
        self.delivery_retention = self.gauge(
            "delivery_retention_seconds", "How long retention keeps the table's rows.", ["table"]
        )
        # The single node's embedded event log, set by whichever service runs its retention;
        # labelled, so a service that does not (every cluster one) exports them empty.
        self.event_log_records_purged = self.counter(
            "event_log_records_purged", "Event log records deleted by retention.", ["topic"]
        )
        self.event_log_records = self.gauge(
            "event_log_records", "Records kept in the embedded event log.", ["topic"]
        )
        self.event_log_oldest_record_age = self.gauge(
            "event_log_oldest_record_age_seconds",
            "Age of the oldest record kept in the embedded event log.",
            ["topic"],
        )
        self.event_log_size = self.gauge(
            "event_log_size_bytes",
            "Embedded event log file: pages in use, and free pages new records reuse.",
            ["pages"],
        )
        self.dependency_up = self.gauge(
            "dependency_up",
            "1 when the dependency answered the last readiness probe.",
            ["dependency"],
        )

    def name(self, what: str) -> str:
        """Return the full metric name for a service-specific metric."""
        return f"sonobridge_{self.service}_{what}"

    def counter(self, what: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """Declare a service-specific counter on the service's registry."""
        return Counter(self.name(what), documentation, labels, registry=self.registry)

    def gauge(self, what: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        """Declare a service-specific gauge on the service's registry."""
        return Gauge(self.name(what), documentation, labels, registry=self.registry)

    def histogram(
        self,
        what: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        """Declare a service-specific histogram on the service's registry."""
        return Histogram(
            self.name(what), documentation, labels, buckets=buckets, registry=self.registry
        )
