"""Reporting metrics (docs/metrics.md), on the service's own registry."""

from __future__ import annotations

from sonobridge.common.metrics import ServiceMetrics

# Turnaround spans minutes to a day: buckets around the 15-minute benchmark and the targets.
TURNAROUND_BUCKETS = (60, 300, 600, 900, 1200, 1800, 3600, 7200, 14400, 28800, 86400)


class ReportingMetrics(ServiceMetrics):
    """Plumbing metrics plus turnaround, SLA breaches, worklist depth, routing and AI verdicts."""

    def __init__(self) -> None:
        super().__init__("reporting")
        self.turnaround = self.histogram(
            "turnaround_seconds",
            "Exam completed to report signed.",
            ["priority", "institution"],
            buckets=TURNAROUND_BUCKETS,
        )
        self.sla_breaches = self.counter(
            "sla_breaches", "Reads past their turnaround target.", ["priority"]
        )
        self.worklist_depth = self.gauge(
            "worklist_depth", "Reads waiting, per worklist.", ["worklist"]
        )
        self.reads_routed = self.counter("reads_routed", "Reads routed, by route.", ["route"])
        self.ai_verdicts = self.counter(
            "ai_verdicts",
            "Reader verdicts on AI findings.",
            ["model", "model_version", "verdict"],
        )
