"""Settings of the inference service: the shared sections plus `inference` (INFERENCE__*)."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field, field_validator

from sonobridge.common.settings import ServiceSettings
from sonobridge.inference.runtime.providers import PREFERRED_PROVIDERS
from sonobridge.inference.runtime.server import parse_model_refs


class InferenceSettings(BaseModel):
    """Model serving, micro-batching, the exam pipeline and its consumer."""

    # Comma-separated, best first; unavailable ones are skipped and CPU is always the fallback.
    providers: str = ",".join(PREFERRED_PROVIDERS)
    intra_op_threads: int = Field(1, ge=0)
    inter_op_threads: int = Field(1, ge=0)
    device_id: int = Field(0, ge=0)
    trt_cache_dir: str | None = None
    max_batch_size: int = Field(32, ge=1)
    max_wait_ms: float = Field(2.0, ge=0)
    queue_size: int = Field(256, ge=1)
    # CPU models run requests side by side, this many at once (0: one per CPU core); set
    # cpu_batching to micro-batch on CPU too. Accelerators always micro-batch.
    direct_runs: int = Field(0, ge=0)
    cpu_batching: bool = False
    # name@version pairs loaded, warmed up and pinned at start; readiness waits for all of them.
    models: str = "image-quality@1.0.0,probe-health@1.0.0,view-check@1.1.0"
    # Also run every exam through each stored version of a gating model registered in shadow
    # (recorded for the shadow-vs-serving comparison only, never shown or acted on).
    run_shadow_versions: bool = True
    # Copy the reference models shipped in the package into the object store when absent.
    publish_packaged_models: bool = True
    # Frame-sampling policy: frames analysed per cine, spread evenly over the loop.
    frames_per_instance: int = Field(8, ge=1)
    consumer_group: str = "sonobridge-inference"
    # Exams analysed at once: ONNX Runtime and numpy run without the GIL, so a second lane uses
    # the other core while one exam decodes, and a long exam no longer holds up short ones.
    consumer_lanes: int = Field(2, ge=1)
    # gRPC worker threads (0: enough for what the loaded models run at once, see grpc_workers).
    grpc_max_workers: int = Field(0, ge=0)
    # The grpc.aio port serving InferStream (None: the gRPC port + 100, or a free port when
    # that is 0, as in tests), and the streams it holds open at once before answering UNAVAILABLE.
    grpc_stream_port: int | None = Field(None, ge=0, le=65535)
    max_streams: int = Field(64, ge=1)
    max_image_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    # Test hook for crash tests: sleep this long after each instance of an exam.
    instance_delay_seconds: float = Field(0.0, ge=0)

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, value: str) -> str:
        names = [p.strip() for p in value.split(",") if p.strip()]
        if not names:
            raise ValueError("name at least one execution provider")
        return ",".join(names)

    @field_validator("models")
    @classmethod
    def _model_refs(cls, value: str) -> str:
        parse_model_refs(value)
        return value

    def direct_run_slots(self) -> int:
        """Return how many requests a CPU model runs at once."""
        return self.direct_runs or max(1, len(os.sched_getaffinity(0)))

    def grpc_workers(self, batching: bool) -> int:
        """Return the gRPC worker threads for models that micro-batch (batching) or run direct."""
        if self.grpc_max_workers:
            return self.grpc_max_workers
        if batching:
            # A micro-batch forms only from calls in flight together, each holding a worker.
            return max(64, 2 * self.max_batch_size)
        # A CPU model runs one call per slot; more workers would only park on the slots, and
        # every hand-off between parked threads costs a wake-up (bench_grpc, 32 clients:
        # service CPU per frame 2.20 ms with 64 workers, 1.69 ms with 4).
        return 2 * self.direct_run_slots() + 2

    def stream_port(self, grpc_port: int) -> int:
        """Return the InferStream port beside a gRPC port (0: any free port)."""
        if self.grpc_stream_port is not None:
            return self.grpc_stream_port
        return grpc_port + 100 if grpc_port else 0

    def provider_list(self) -> tuple[str, ...]:
        """Return the preferred providers, best first."""
        return tuple(self.providers.split(","))

    def model_refs(self) -> list[tuple[str, str | None]]:
        """Return the (name, version) pairs to load and pin."""
        return parse_model_refs(self.models)


class Settings(ServiceSettings):
    """Everything the inference service reads from the environment."""

    inference: InferenceSettings = InferenceSettings()
