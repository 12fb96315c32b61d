"""Run a named model on an uploaded image or on caller-prepared tensors."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from sonobridge.common.problems import InvalidInput, Problem, UnsupportedMediaType
from sonobridge.inference.domain.model_card import ModelCard, rank_labels
from sonobridge.inference.handlers import Dependencies
from sonobridge.inference.imaging.decode import DecodedImage, FrameSelection, decode_image
from sonobridge.inference.imaging.preprocess import to_tensor
from sonobridge.inference.ports import ServedModel

MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "application/dicom"})


@dataclass(frozen=True)
class Inference:
    """Raw outputs of one model run and the labels they score, best first."""

    card: ModelCard
    outputs: dict[str, np.ndarray]
    labels: list[tuple[str, float]]
    latency_ms: float


def preprocess(deps: Dependencies, model: ServedModel, frames: np.ndarray) -> np.ndarray:
    """Resize and scale frames as the model's card says, timing the stage."""
    started = time.perf_counter()
    x = to_tensor(frames, model.input_spec)
    deps.metrics.stage(model.card.name, "preprocess").observe(time.perf_counter() - started)
    return x


def run_model(
    deps: Dependencies, model: ServedModel, x: np.ndarray, started: float
) -> dict[str, Any]:
    """Run the model, counting unexpected failures and timing the whole request."""
    name = model.card.name
    try:
        out = deps.models.infer(name, x, model.card.version)
    except Problem:
        raise
    except Exception:
        deps.metrics.errors.labels(name, "run").inc()
        raise
    deps.metrics.stage(name, "total").observe(time.perf_counter() - started)
    return out


def decode_upload(
    deps: Dependencies, model: str, data: bytes, media_type: str, frame: int
) -> DecodedImage:
    """Decode one frame of an uploaded JPEG, PNG or DICOM instance."""
    if media_type and media_type.split(";")[0].strip().lower() not in MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"media type {media_type!r} is not supported; send image/jpeg, image/png or "
            "application/dicom"
        )
    try:
        return decode_image(data, FrameSelection(frame))
    except Problem:
        deps.metrics.errors.labels(model, "decode").inc()
        raise


def infer_image(
    deps: Dependencies,
    name: str,
    version: str | None,
    data: bytes,
    media_type: str,
    frame_index: int = 0,
) -> Inference:
    """Decode and preprocess an image as the model's card says, then run the model."""
    started = time.perf_counter()
    model = deps.models.get(name, version or None)
    decoded = decode_upload(deps, name, data, media_type, frame_index)
    out = run_model(deps, model, preprocess(deps, model, decoded.frames), started)
    return Inference(model.card, out, rank_labels(model.card, out), _ms(started))


def infer_tensors(
    deps: Dependencies, name: str, version: str | None, tensors: dict[str, np.ndarray]
) -> Inference:
    """Run the model on caller-prepared tensors, fed as they are."""
    started = time.perf_counter()
    model = deps.models.get(name, version or None)
    want = model.input_spec.name
    if set(tensors) != {want}:
        raise InvalidInput(f"{name} takes one input named {want!r}, got {sorted(tensors)}")
    out = run_model(deps, model, tensors[want], started)
    return Inference(model.card, out, rank_labels(model.card, out), _ms(started))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
