"""Choose ONNX Runtime execution providers by availability and build sessions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnxruntime as ort

PREFERRED_PROVIDERS: tuple[str, ...] = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)


@dataclass(frozen=True)
class SessionConfig:
    """Provider preference and threading for every session this process creates."""

    providers: tuple[str, ...] = PREFERRED_PROVIDERS
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    trt_cache_dir: str | None = None


def choose_providers(available: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """Return wanted providers that are available, in preference order, CPU always last."""
    chosen = [p for p in wanted if p in available and p != "CPUExecutionProvider"]
    # CPU stays as the fallback for ops an accelerator provider does not implement.
    return [*chosen, "CPUExecutionProvider"]


def _provider_options(name: str, config: SessionConfig) -> dict[str, str]:
    if name == "TensorrtExecutionProvider" and config.trt_cache_dir:
        return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": config.trt_cache_dir}
    return {}


def create_session(model_bytes: bytes, config: SessionConfig) -> ort.InferenceSession:
    """Create an inference session on the best available provider."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = config.intra_op_threads
    opts.inter_op_num_threads = config.inter_op_threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = choose_providers(ort.get_available_providers(), config.providers)
    return ort.InferenceSession(
        model_bytes,
        opts,
        providers=providers,
        provider_options=[_provider_options(p, config) for p in providers],
    )
