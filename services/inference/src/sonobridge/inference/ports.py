"""Ports the inference use cases depend on; adapters and runtime implement them, tests fake them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from sonobridge.inference.domain.comparison import LabelledVerdict
from sonobridge.inference.domain.exams import (
    InferenceResult,
    RecordedQuality,
    RecordedResult,
    ResultKey,
)
from sonobridge.inference.domain.model_card import ModelCard
from sonobridge.inference.domain.validation import (
    DeviceModel,
    DeviceValidation,
    ExpertLabel,
    StateChange,
)
from sonobridge.inference.imaging.preprocess import InputSpec


class ServedModel(Protocol):
    """A loaded model: its card and the input its preprocessing must produce."""

    @property
    def card(self) -> ModelCard:
        """Return the model's card."""
        ...

    @property
    def input_spec(self) -> InputSpec:
        """Return the input the model expects."""
        ...


class ModelCatalog(Protocol):
    """The stored model versions and which of them this replica has loaded and pinned."""

    def available(self) -> dict[str, list[str]]:
        """Return every stored model name with its versions, oldest first."""
        ...

    def card(self, name: str, version: str | None = None) -> ModelCard:
        """Return a stored model's card; ModelNotFound when it is not stored."""
        ...

    def card_bytes(self, name: str, version: str) -> bytes:
        """Return card.json exactly as stored."""
        ...

    def model_bytes(self, name: str, version: str) -> bytes:
        """Return the ONNX bytes, verified against the card's hash."""
        ...

    def pinned(self, name: str) -> str | None:
        """Return the pinned version of a model, if any."""
        ...

    def is_loaded(self, name: str, version: str) -> bool:
        """Return True when that exact version is loaded."""
        ...

    def pin(self, name: str, version: str) -> None:
        """Serve this loaded version for requests that name none."""
        ...


class ModelServing(Protocol):
    """Loaded models, run from any thread; blocks until the batch with the rows has run."""

    @property
    def registry(self) -> ModelCatalog:
        """Return the catalog of stored and loaded versions."""
        ...

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """Return a loaded model (given version, else pinned, else newest)."""
        ...

    def infer(self, name: str, x: np.ndarray, version: str | None = None) -> dict[str, Any]:
        """Run preprocessed rows through the model."""
        ...

    def load(self, name: str, version: str | None = None) -> ServedModel:
        """Load and warm up a model version."""
        ...

    def unload(self, name: str, version: str) -> None:
        """Unload a version; Conflict for the pinned version of a required model."""
        ...

    def shadow_versions(self, name: str) -> list[str]:
        """Return the loaded versions of a model registered in shadow beside the pinned one."""
        ...


class ModelBatches(Protocol):
    """Loaded models run on the caller's event loop (evaluation drives a registry directly)."""

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """Return a loaded model."""
        ...

    async def infer(self, name: str, x: np.ndarray, version: str | None = None) -> dict[str, Any]:
        """Run preprocessed rows through the model's batcher."""
        ...


class InferenceResults(Protocol):
    """Recorded inference results, one per exam, manifest and set of model versions."""

    def find(self, key: ResultKey) -> RecordedResult | None:
        """Return the result recorded for this key, if any."""
        ...

    def add(self, result: InferenceResult) -> None:
        """Record a new result."""
        ...

    def quality_of(self, study_instance_uid: str, sop_instance_uid: str) -> RecordedQuality | None:
        """Return what the newest result of the study said of the instance's quality, if any."""
        ...


class ExamWork(Protocol):
    """One transaction (the consumer worker's): results and the events to publish on commit."""

    @property
    def results(self) -> InferenceResults:
        """Results in this transaction."""
        ...

    def publish(self, result: InferenceResult) -> None:
        """Stage the InferenceCompleted event of a result in this transaction's outbox."""
        ...


class DeviceValidations(Protocol):
    """Stored validation states per (gating model, device model) and the experts' labels."""

    def find(self, model_name: str, device: DeviceModel) -> DeviceValidation | None:
        """Return the stored state, or None when nobody has promoted or demoted it."""
        ...

    def all(self) -> list[DeviceValidation]:
        """Return every stored state."""
        ...

    def change(self, change: StateChange) -> None:
        """Record the new state and its audit record (who, from, to, why) in one transaction."""
        ...

    def add_labels(self, labels: Sequence[ExpertLabel]) -> None:
        """Keep expert quality labels; a label of the same instance and model replaces it."""
        ...

    def window(self, model_name: str, device: DeviceModel, size: int) -> list[ExpertLabel]:
        """Return the newest `size` labels of a model on a device model, newest first."""
        ...


class VersionComparisons(Protocol):
    """Stored verdicts of every version joined to the experts' labels of the same instances."""

    def labelled(self, model_name: str, device: DeviceModel | None = None) -> list[LabelledVerdict]:
        """Return each labelled instance's verdict per version of a model (one device, or all)."""
        ...
