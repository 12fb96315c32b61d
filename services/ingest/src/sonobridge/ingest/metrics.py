"""Ingest's own metrics (docs/metrics.md), on the service registry."""

from __future__ import annotations

from prometheus_client import Counter

from sonobridge.common.metrics import ServiceMetrics


class IngestMetrics:
    """Uploads, bytes, resumes, rejections and completed exams."""

    def __init__(self, service: ServiceMetrics) -> None:
        self.service = service
        reg = service.registry
        self.uploads = Counter(
            service.name("uploads"),
            "Instances received, by channel and outcome.",
            ["channel", "outcome"],
            registry=reg,
        )
        self.uploaded_bytes = Counter(
            service.name("uploaded_bytes"), "Bytes accepted.", ["channel"], registry=reg
        )
        self.upload_resumes = Counter(
            service.name("upload_resumes"),
            "Resumable uploads continued after a break.",
            registry=reg,
        )
        self.rejections = Counter(
            service.name("rejections"), "Rejected inputs by reason.", ["reason"], registry=reg
        )
        self.exams_completed = Counter(
            service.name("exams_completed"), "Exams completed.", ["exam_type"], registry=reg
        )
