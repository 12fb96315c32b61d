"""The metrics every service exports, each service in its own registry (see docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServiceMetrics:
    """Plumbing metrics named `sonobridge_<service>_...`; services add their own to `registry`."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        # One registry per service: the single-node edition runs several services in one process.
        self.service = service
        self.registry = registry or CollectorRegistry()
        prefix = f"sonobridge_{service}"
        reg = self.registry
        self.http_requests = Counter(
            f"{prefix}_http_requests",
            "REST requests served.",
            ["method", "route", "status"],
            registry=reg,
        )
        self.http_latency = Histogram(
            f"{prefix}_http_request_duration_seconds",
            "REST request latency.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.grpc_requests = Counter(
            f"{prefix}_grpc_requests", "gRPC calls served.", ["method", "code"], registry=reg
        )
        self.events_published = Counter(
            f"{prefix}_events_published",
            "Events shipped by the outbox relay.",
            ["topic"],
            registry=reg,
        )
        self.events_consumed = Counter(
            f"{prefix}_events_consumed",
            "Events handled, by outcome.",
            ["topic", "outcome"],
            registry=reg,
        )
        self.events_dead_lettered = Counter(
            f"{prefix}_events_dead_lettered",
            "Events moved to the dead-letter topic.",
            ["topic"],
            registry=reg,
        )
        self.consumer_lag = Gauge(
            f"{prefix}_consumer_lag_messages",
            "Messages behind the log end.",
            ["topic"],
            registry=reg,
        )
        self.outbox_pending = Gauge(
            f"{prefix}_outbox_pending_events", "Outbox rows not yet shipped.", registry=reg
        )
        self.dependency_up = Gauge(
            f"{prefix}_dependency_up",
            "1 when the dependency answered the last readiness probe.",
            ["dependency"],
            registry=reg,
        )

    def name(self, what: str) -> str:
        """Return the full metric name for a service-specific metric."""
        return f"sonobridge_{self.service}_{what}"
