"""All inference-service metrics, declared in one place (names from docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SERVICE = "inference"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class InferenceMetrics:
    """Prometheus collectors for serving; one instance per registry (tests pass their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        kw = {"registry": registry} if registry is not None else {}
        self.stage_seconds = Histogram(
            "sonobridge_inference_model_latency_seconds",
            "Time spent per model and stage (preprocess, queue, run, total).",
            ["model", "stage"],
            buckets=_LATENCY_BUCKETS,
            **kw,
        )
        self.batch_size = Histogram(
            "sonobridge_inference_batch_size",
            "Rows per executed micro-batch.",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            **kw,
        )
        self.queue_depth = Gauge(
            "sonobridge_inference_queue_depth",
            "Requests waiting in a model's batching queue.",
            ["model"],
            **kw,
        )
        self.rejected = Counter(
            "sonobridge_inference_requests_shed",
            "Requests refused because the queue was full.",
            ["model"],
            **kw,
        )
        self.errors = Counter(
            "sonobridge_inference_errors",
            "Failed inferences, by kind (run, decode, input, instance).",
            ["model", "kind"],
            **kw,
        )
        self.provider = Gauge(
            "sonobridge_inference_provider_info",
            "Execution provider serving each loaded model (1 = in use).",
            ["model", "provider"],
            **kw,
        )
        self.quality_assessments = Counter(
            "sonobridge_inference_quality_assessments",
            "Real-time quality checks, by outcome (acceptable or rescan).",
            ["institution", "operator", "outcome"],
            **kw,
        )
        self.validation_state = Gauge(
            "sonobridge_inference_validation_state",
            "1 for the current validation state of a gating model on a device model.",
            ["model", "device_model", "state"],
            **kw,
        )
        self.validation_changes = Counter(
            "sonobridge_inference_validation_state_changes",
            "Validation state changes, by trigger (promotion or demotion).",
            ["model", "from_state", "to_state", "trigger"],
            **kw,
        )
        self.frame_views = Counter(
            "sonobridge_inference_frame_views",
            "Exam frames by the view the view check gave them (what the clinical modules may see).",
            ["view"],
            **kw,
        )
