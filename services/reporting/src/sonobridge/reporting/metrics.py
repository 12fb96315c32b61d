"""Reporting metrics (docs/metrics.md), on the service's own registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from sonobridge.common.metrics import ServiceMetrics

# Turnaround spans minutes to a day: buckets around the 15-minute benchmark and the targets.
TURNAROUND_BUCKETS = (60, 300, 600, 900, 1200, 1800, 3600, 7200, 14400, 28800, 86400)


class ReportingMetrics(ServiceMetrics):
    """Plumbing metrics plus turnaround, SLA breaches, worklist depth, routing and AI verdicts."""

    def __init__(self) -> None:
        super().__init__("reporting")
        reg = self.registry
        self.turnaround = Histogram(
            self.name("turnaround_seconds"),
            "Exam completed to report signed.",
            ["priority", "institution"],
            buckets=TURNAROUND_BUCKETS,
            registry=reg,
        )
        self.sla_breaches = Counter(
            self.name("sla_breaches"),
            "Reads past their turnaround target.",
            ["priority"],
            registry=reg,
        )
        self.worklist_depth = Gauge(
            self.name("worklist_depth"), "Reads waiting, per worklist.", ["worklist"], registry=reg
        )
        self.reads_routed = Counter(
            self.name("reads_routed"), "Reads routed, by route.", ["route"], registry=reg
        )
        self.ai_verdicts = Counter(
            self.name("ai_verdicts"),
            "Reader verdicts on AI findings.",
            ["model", "model_version", "verdict"],
            registry=reg,
        )
