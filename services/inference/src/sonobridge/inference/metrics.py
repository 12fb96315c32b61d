"""All inference-service metrics, declared in one place (names from docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

SERVICE = "inference"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class InferenceMetrics:
    """Prometheus collectors for serving; one instance per registry (tests pass their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # Without a registry of their own, the collectors go to the process-wide default one.
        registry = REGISTRY if registry is None else registry
        self.stage_seconds = Histogram(
            "sonobridge_inference_model_latency_seconds",
            "Time spent per model and stage (preprocess, queue, run, total).",
            ["model", "stage"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "sonobridge_inference_batch_size",
            "Rows per executed micro-batch.",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=registry,
        )
        self.queue_depth = Gauge(
            "sonobridge_inference_queue_depth",
            "Requests waiting in a model's batching queue.",
            ["model"],
            registry=registry,
        )
        self.rejected = Counter(
            "sonobridge_inference_requests_shed",
            "Requests refused because the queue was full.",
            ["model"],
            registry=registry,
        )
        self.errors = Counter(
            "sonobridge_inference_errors",
            "Failed inferences, by kind (run, decode, input, instance).",
            ["model", "kind"],
            registry=registry,
        )
        self.provider = Gauge(
            "sonobridge_inference_provider_info",
            "Execution provider serving each loaded model (1 = in use).",
            ["model", "provider"],
            registry=registry,
        )
        self.quality_assessments = Counter(
            "sonobridge_inference_quality_assessments",
            "Real-time quality checks, by outcome (acceptable or rescan).",
            ["institution", "operator", "outcome"],
            registry=registry,
        )
        self.validation_state = Gauge(
            "sonobridge_inference_validation_state",
            "1 for the current validation state of a gating model on a device model.",
            ["model", "device_model", "state"],
            registry=registry,
        )
        self.validation_changes = Counter(
            "sonobridge_inference_validation_state_changes",
            "Validation state changes, by trigger (promotion or demotion).",
            ["model", "from_state", "to_state", "trigger"],
            registry=registry,
        )
        self.frame_views = Counter(
            "sonobridge_inference_frame_views",
            "Exam frames by the view the view check gave them (what the clinical modules may see).",
            ["view"],
            registry=registry,
        )
        self.comparison_instances = Gauge(
            "sonobridge_inference_comparison_instances",
            "Expert-labelled live instances per gating model version and device model, by "
            "outcome (labelled, false_rescan, fault_caught): the shadow-vs-serving comparison.",
            ["model", "version", "stage", "device_model", "outcome"],
            registry=registry,
        )
        self.comparison_agreement = Gauge(
            "sonobridge_inference_comparison_agreement_ratio",
            "Share of labelled instances where a version's verdict equals the serving version's.",
            ["model", "version", "device_model"],
            registry=registry,
        )
        # Children of stage_seconds by (model, stage): labels() validates and locks per call.
        self._stages: dict[tuple[str, str], Histogram] = {}

    def stage(self, model: str, stage: str) -> Histogram:
        """Return the stage_seconds child of a loaded model's stage, looked up once."""
        child = self._stages.get((model, stage))
        if child is None:
            child = self._stages[(model, stage)] = self.stage_seconds.labels(model, stage)
        return child
