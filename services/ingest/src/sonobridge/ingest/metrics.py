"""Ingest's own metrics (docs/metrics.md), on the service registry."""

from __future__ import annotations

from sonobridge.common.metrics import ServiceMetrics


class IngestMetrics:
    """Uploads, bytes, resumes, rejections and completed exams."""

    def __init__(self, service: ServiceMetrics) -> None:
        self.service = service
        self.uploads = service.counter(
            "uploads", "Instances received, by channel and outcome.", ["channel", "outcome"]
        )
        self.uploaded_bytes = service.counter("uploaded_bytes", "Bytes accepted.", ["channel"])
        self.upload_resumes = service.counter(
            "upload_resumes", "Resumable uploads continued after a break."
        )
        self.rejections = service.counter("rejections", "Rejected inputs by reason.", ["reason"])
        self.exams_completed = service.counter("exams_completed", "Exams completed.", ["exam_type"])
