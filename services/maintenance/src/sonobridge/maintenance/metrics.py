"""Maintenance metrics (docs/metrics.md), declared in one place on the service registry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sonobridge.common.metrics import ServiceMetrics

SERVICE = "maintenance"
# Minutes to days: the acknowledge target is an hour, the on-site target a day.
RESPONSE_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 345600)


@dataclass(frozen=True)
class FleetSnapshot:
    """Gauge values read from the database at scrape time."""

    open_tickets: dict[tuple[str, str], int]
    availability: dict[str, float]


class _FleetCollector(Collector):
    """Read open tickets and availability when Prometheus scrapes, so they are never stale."""

    def __init__(self, prefix: str, read: Callable[[], FleetSnapshot]) -> None:
        self.prefix = prefix
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot = self.read()
        tickets = GaugeMetricFamily(
            f"{self.prefix}_open_tickets",
            "Tickets not closed, by state and SLA status.",
            labels=["state", "sla_status"],
        )
        for (state, status), count in sorted(snapshot.open_tickets.items()):
            tickets.add_metric([state, status], count)
        yield tickets
        availability = GaugeMetricFamily(
            f"{self.prefix}_device_availability_ratio",
            "In-service devices / assigned devices, per institution.",
            labels=["institution"],
        )
        for institution, ratio in sorted(snapshot.availability.items()):
            availability.add_metric([institution], ratio)
        yield availability

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


class MaintenanceMetrics:
    """The service's own metrics, on the registry of its ServiceMetrics."""

    def __init__(self, base: ServiceMetrics) -> None:
        self.base = base
        self.time_to_acknowledge = base.histogram(
            "time_to_acknowledge_seconds",
            "Ticket opened -> acknowledged, pauses excluded.",
            buckets=RESPONSE_BUCKETS,
        )
        self.time_to_onsite = base.histogram(
            "time_to_onsite_seconds",
            "Ticket opened -> engineer on site, pauses excluded.",
            buckets=RESPONSE_BUCKETS,
        )
        self.sla_breaches = base.counter(
            "ticket_sla_breaches", "Breaches of the acknowledge or onsite clock.", ["clock"]
        )
        for clock in ("acknowledge", "onsite"):
            self.sla_breaches.labels(clock)
        self.scan_seconds = base.counter(
            "scan_seconds", "Probe scan time reported, per institution.", ["institution"]
        )
        self._collector: _FleetCollector | None = None

    def watch_fleet(self, read: Callable[[], FleetSnapshot]) -> None:
        """Serve the open-tickets and availability gauges from `read` at scrape time."""
        if self._collector is None:
            self._collector = _FleetCollector(f"sonobridge_{self.base.service}", read)
            self.base.registry.register(self._collector)
