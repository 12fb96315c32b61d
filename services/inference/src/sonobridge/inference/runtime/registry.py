"""Model registry: load, warm up, pin and unload models stored as models/{name}/{version}/."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from sonobridge.common.objects.ports import InvalidObjectKey, key_segment
from sonobridge.inference.domain.errors import (
    InferenceError,
    InvalidInput,
    ModelIntegrityError,
    ModelNotFound,
    ModelNotLoaded,
)
from sonobridge.inference.domain.model_card import ModelCard, set_aside, version_key
from sonobridge.inference.imaging.preprocess import InputSpec
from sonobridge.inference.metrics import InferenceMetrics
from sonobridge.inference.runtime.batcher import BatchPolicy, MicroBatcher
from sonobridge.inference.runtime.providers import SessionConfig, SessionFactory, create_session

PACKAGED_MODELS_ROOT = Path(__file__).resolve().parent.parent


class ModelSource(Protocol):
    """Object-store-like read access to the registry's keys."""

    def get_bytes(self, key: str) -> bytes:
        """Return the object's bytes; raise KeyError when it does not exist."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Return all keys starting with prefix."""
        ...


class LocalDirModelSource:
    """A directory holding `models/{name}/{version}/...` (the packaged models, or a mirror)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def get_bytes(self, key: str) -> bytes:
        """Return the bytes of root/key; raise KeyError when it does not exist."""
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents or not path.is_file():
            raise KeyError(key)
        return path.read_bytes()

    def list(self, prefix: str) -> list[str]:
        """Return keys (relative posix paths) under root that start with prefix."""
        base = self.root / "models"
        if not base.is_dir():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix))


def _key(name: str, version: str, file: str) -> str:
    # Names arrive from URLs: one that cannot be a key segment is the caller's error (422),
    # never an OSError or ValueError from the store.
    name = key_segment(name, what="model name")
    version = key_segment(version, what="model version")
    return f"models/{name}/{version}/{file}"


def warm_up_batches(provider: str, max_batch_size: int) -> list[int]:
    """Return the batch sizes to run before readiness on this provider."""
    if provider == "CPUExecutionProvider":
        # The CPU arena keeps its peak for the life of the process: warming at the largest
        # batch left +482 MB idle for probe health, where batch 1 costs 27 MB and the first
        # real large batch grows the arena only if traffic ever needs it.
        return [1]
    # Accelerators build kernels or TensorRT engines per shape; build the largest up front.
    return sorted({1, max_batch_size})


def packaged_models() -> LocalDirModelSource:
    """Return the source for the reference models shipped inside this package."""
    return LocalDirModelSource(PACKAGED_MODELS_ROOT)


@dataclass
class LoadedModel:
    """A model ready to serve: its card, session, input spec and batcher."""

    card: ModelCard
    session: ort.InferenceSession
    input_spec: InputSpec
    batcher: MicroBatcher
    output_names: list[str] = field(default_factory=list)

    @property
    def provider(self) -> str:
        """Return the execution provider that runs this model."""
        return self.session.get_providers()[0]

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch directly on the session (the batcher calls this)."""
        outs = self.session.run(self.output_names, {self.input_spec.name: x})
        return dict(zip(self.output_names, outs, strict=True))

    def check_input(self, x: np.ndarray) -> None:
        """Raise InvalidInput unless x is float32 [N, 1, H, W] as the card says."""
        want = (1, self.input_spec.height, self.input_spec.width)
        if x.dtype != np.float32 or x.ndim != 4 or tuple(x.shape[1:]) != want or x.shape[0] < 1:
            raise InvalidInput(
                f"{self.card.name} expects float32 [N, {want[0]}, {want[1]}, {want[2]}], "
                f"got {x.dtype} {list(x.shape)}"
            )


class ModelRegistry:
    """Loaded models by name and version; readiness means every required model is warmed up."""

    def __init__(
        self,
        source: ModelSource,
        session_config: SessionConfig | None = None,
        policy: BatchPolicy | None = None,
        metrics: InferenceMetrics | None = None,
        *,
        available_providers: Sequence[str] | None = None,
        session_factory: SessionFactory | None = None,
    ) -> None:
        self._source = source
        # Injected by tests to exercise provider choice on machines without an accelerator.
        self._available_providers = available_providers
        self._session_factory = session_factory
        self._session_config = session_config or SessionConfig()
        self._policy = policy or BatchPolicy()
        self._metrics = metrics
        self._loaded: dict[tuple[str, str], LoadedModel] = {}
        self._pins: dict[str, str] = {}

    def available(self) -> dict[str, list[str]]:
        """Return every stored model name with its versions, oldest first."""
        return self._stored("models/")

    def _versions(self, name: str) -> list[str]:
        """Return one model's stored versions, oldest first, listing only its own prefix."""
        name = key_segment(name, what="model name")
        return self._stored(f"models/{name}/").get(name, [])

    def _stored(self, prefix: str) -> dict[str, list[str]]:
        found: dict[str, set[str]] = {}
        for key in self._source.list(prefix):
            parts = key.split("/")
            if len(parts) == 4 and parts[3] == "card.json":
                found.setdefault(parts[1], set()).add(parts[2])
        return {n: sorted(v, key=version_key) for n, v in sorted(found.items())}

    def card(self, name: str, version: str | None = None) -> ModelCard:
        """Return a stored model's card without loading it."""
        version = version or self._latest_stored(name)
        try:
            return ModelCard.from_json(self._source.get_bytes(_key(name, version, "card.json")))
        except KeyError:
            raise ModelNotFound(f"model {name} version {version} is not in the registry") from None

    def card_bytes(self, name: str, version: str) -> bytes:
        """Return card.json exactly as stored."""
        try:
            return self._source.get_bytes(_key(name, version, "card.json"))
        except KeyError:
            raise ModelNotFound(f"model {name} version {version} is not in the registry") from None

    def model_bytes(self, name: str, version: str) -> bytes:
        """Return a stored model's ONNX bytes, verified against its card's sha256."""
        card = self.card(name, version)
        try:
            data = self._source.get_bytes(_key(name, version, "model.onnx"))
        except KeyError:
            raise ModelNotFound(f"model {name} version {version} has no model.onnx") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != card.sha256:
            raise ModelIntegrityError(
                f"model {name} {version}: sha256 {digest} does not match card {card.sha256}"
            )
        return data

    def _latest_stored(self, name: str) -> str:
        versions = self._versions(name)
        if not versions:
            raise ModelNotFound(f"no model named {name!r} in the registry")
        # A version registered in shadow (the lab's adapt) runs only when asked for by number,
        # so registering one never changes what a request without a version gets; nor does
        # retiring one.
        released = [v for v in versions if not self._set_aside(name, v)]
        return (released or versions)[-1]

    def _set_aside(self, name: str, version: str) -> bool:
        try:
            card = json.loads(self._source.get_bytes(_key(name, version, "card.json")))
        except (KeyError, ValueError):
            return False
        return set_aside(card)

    async def load(self, name: str, version: str | None = None) -> LoadedModel:
        """Load, verify and warm up a model version (latest stored when version is None)."""
        version = version or self._pins.get(name) or self._latest_stored(name)
        key = (name, version)
        if key in self._loaded:
            return self._loaded[key]
        card = self.card(name, version)
        extra = {"factory": self._session_factory} if self._session_factory else {}
        session = create_session(
            self.model_bytes(name, version),
            self._session_config,
            available=self._available_providers,
            **extra,
        )
        spec = InputSpec.from_card(card.raw["input"])
        outputs = [o.name for o in session.get_outputs()]
        holder: dict[str, LoadedModel] = {}
        on_cpu = session.get_providers()[0] == "CPUExecutionProvider"
        batcher = MicroBatcher(
            f"{name}:{version}",
            lambda x: holder["m"].run(x),
            self._policy,
            self._metrics,
            batching=self._policy.cpu_batching or not on_cpu,
        )
        model = LoadedModel(card, session, spec, batcher, outputs)
        holder["m"] = model
        self._warm_up(model)
        await batcher.start()
        self._loaded[key] = model
        if self._metrics:
            self._metrics.provider.labels(name, model.provider).set(1)
        return model

    def _warm_up(self, model: LoadedModel) -> None:
        # First runs allocate arenas and (on GPU) build kernels or TensorRT engines; do it
        # before readiness so the first operator does not wait for it.
        spec = model.input_spec
        for n in warm_up_batches(model.provider, self._policy.max_batch_size):
            model.run(np.zeros((n, 1, spec.height, spec.width), dtype=np.float32))

    async def unload(self, name: str, version: str | None = None) -> None:
        """Unload one version, or every loaded version of the model."""
        keys = [k for k in self._loaded if k[0] == name and (version is None or k[1] == version)]
        if not keys:
            raise ModelNotLoaded(f"model {name} {version or ''} is not loaded".replace("  ", " "))
        for k in keys:
            model = self._loaded.pop(k)
            await model.batcher.stop()
            if self._metrics:
                self._metrics.provider.labels(k[0], model.provider).set(0)

    def pin(self, name: str, version: str) -> None:
        """Serve this version of the model until another is pinned (it must be loaded)."""
        if (name, version) not in self._loaded:
            raise ModelNotLoaded(f"load {name} {version} before pinning it")
        self._pins[name] = version

    def pinned(self, name: str) -> str | None:
        """Return the pinned version of a model, if any."""
        return self._pins.get(name)

    def is_loaded(self, name: str, version: str) -> bool:
        """Return True when that exact version is loaded."""
        return (name, version) in self._loaded

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """Return the loaded model: the given version, else the pinned one, else the newest."""
        version = version or self._pins.get(name)
        if version is not None:
            try:
                return self._loaded[(name, version)]
            except KeyError:
                raise self._absent(name, version) from None
        versions = [v for (n, v) in self._loaded if n == name]
        if not versions:
            raise self._absent(name, None)
        return self._loaded[(name, max(versions, key=version_key))]

    def _absent(self, name: str, version: str | None) -> InferenceError:
        """NOT_FOUND for what the registry does not store; else UNAVAILABLE, not loaded here."""
        # Only on a miss, and only the name's own prefix: a listing costs what that model
        # holds, so a caller naming unknown models cannot make every request walk the store.
        try:
            stored = self._versions(name)
        except InvalidObjectKey:
            return ModelNotFound(f"no model named {name[:64]!r} in the registry")
        if not stored:
            return ModelNotFound(f"no model named {name!r} in the registry")
        if version is not None and version not in stored:
            return ModelNotFound(f"model {name} version {version!r} is not in the registry")
        return ModelNotLoaded(f"model {name} {version or ''} is not loaded".replace("  ", " "))

    def loaded(self) -> list[LoadedModel]:
        """Return every loaded model."""
        return list(self._loaded.values())

    def is_ready(self, required: list[str]) -> bool:
        """Return True when every required model name has a loaded, warmed-up version."""
        names = {n for n, _ in self._loaded}
        return all(r in names for r in required)

    async def infer(self, name: str, x: np.ndarray, version: str | None = None) -> dict:
        """Run preprocessed rows through the model's batcher."""
        model = self.get(name, version)
        model.check_input(x)
        return await model.batcher.infer(x)

    async def close(self) -> None:
        """Unload everything."""
        for name in {n for n, _ in self._loaded}:
            await self.unload(name)
