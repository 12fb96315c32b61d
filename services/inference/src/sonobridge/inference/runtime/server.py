"""Serve the asyncio model registry to threads (gRPC workers, REST threadpool, the consumer)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import numpy as np

from sonobridge.common.problems import Conflict
from sonobridge.inference.domain.model_card import in_shadow, version_key
from sonobridge.inference.runtime.registry import LoadedModel, ModelRegistry

T = TypeVar("T")
log = logging.getLogger(__name__)


def parse_model_refs(spec: str | Sequence[str]) -> list[tuple[str, str | None]]:
    """Parse "name@version,name" into (name, version or None) pairs."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    refs = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        name, _, version = item.partition("@")
        if not name:
            raise ValueError(f"model reference {item!r} has no name")
        refs.append((name, version or None))
    return refs


class ModelServer:
    """Owns one event loop thread on which every batcher runs; callers block on results.

    Preprocessing stays on the caller's thread, so the loop only groups requests and hands
    batches to the session threads: one slow decode cannot stall other models' batches.
    """

    def __init__(self, registry: ModelRegistry, *, run_shadows: bool = False) -> None:
        self.registry = registry
        # Load stored shadow versions on their model's first exam, not at start: idle
        # memory stays as it was, and a node without exams never loads them.
        self.run_shadows = run_shadows
        self._shadows_sought: set[str] = set()
        self._shadow_lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="inference-serving-loop", daemon=True
        )
        self._thread.start()
        self.required: list[str] = []

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the serving loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def infer(self, name: str, x: np.ndarray, version: str | None = None) -> dict[str, Any]:
        """Run preprocessed rows on the idle model at once, else through its micro-batcher."""
        model = self.registry.get(name, version)
        model.check_input(x)
        now = model.batcher.try_run_now(x)
        if now is not None:
            return now
        if not model.batcher.batching:
            return model.batcher.run_here(x)
        return self.call(self.registry.infer(name, x, version))

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """Return a loaded model (given version, else pinned, else newest)."""
        return self.registry.get(name, version)

    def load_and_pin(self, refs: Sequence[tuple[str, str | None]]) -> None:
        """Load and warm up each model, pin it, and require it for readiness."""
        for name, version in refs:
            model = self.call(self.registry.load(name, version))
            self.registry.pin(name, model.card.version)
            if name not in self.required:
                self.required.append(name)

    def load(self, name: str, version: str | None = None) -> LoadedModel:
        """Load and warm up a model version at run time (serving goes on meanwhile)."""
        return self.call(self.registry.load(name, version))

    def unload(self, name: str, version: str) -> None:
        """Unload a version; the pinned version of a required model stays (it serves traffic)."""
        if name in self.required and self.registry.pinned(name) == version:
            raise Conflict(f"{name} {version} is pinned and required: pin another version first")
        self.call(self.registry.unload(name, version))

    def shadow_versions(self, name: str) -> list[str]:
        """Return the loaded versions of a model registered in shadow beside the pinned one.

        The first call for a model loads every stored shadow version of it (when this
        server runs shadows); a version an admin loads later joins from then on.
        """
        if self.run_shadows and name not in self._shadows_sought:
            with self._shadow_lock:
                if name not in self._shadows_sought:
                    self._load_shadows(name)
                    self._shadows_sought.add(name)
        pinned = self.registry.pinned(name)
        found = [
            m.card.version
            for m in self.registry.loaded()
            if m.card.name == name and m.card.version != pinned and in_shadow(m.card.raw)
        ]
        return sorted(found, key=version_key)

    def _load_shadows(self, name: str) -> None:
        for version in self.registry.available().get(name, []):
            if self.registry.is_loaded(name, version):
                continue
            try:
                if in_shadow(self.registry.card(name, version).raw):
                    self.load(name, version)
                    log.info("shadow version %s %s loaded beside the served one", name, version)
            except Exception:
                # A broken shadow card or model must never stop the served version's exams.
                log.exception("shadow version %s %s could not be loaded", name, version)

    def is_ready(self) -> bool:
        """Return True when every required model is loaded and warmed up."""
        return bool(self.required) and self.registry.is_ready(self.required)

    def check_ready(self) -> None:
        """Raise unless ready (a readiness check for /readyz)."""
        if not self.is_ready():
            missing = [n for n in self.required if not self.registry.is_ready([n])]
            raise RuntimeError(f"models not loaded: {', '.join(missing) or 'none configured'}")

    def close(self) -> None:
        """Unload every model and stop the loop."""
        if self._loop.is_closed():
            return
        self.call(self.registry.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
