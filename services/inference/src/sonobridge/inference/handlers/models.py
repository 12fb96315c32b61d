"""The model registry as clients see it: list, describe, download, and (admins) load and pin."""

from __future__ import annotations

from dataclasses import dataclass

from sonobridge.common.auth import Principal
from sonobridge.common.problems import Conflict, InvalidInput
from sonobridge.inference.domain.errors import ModelNotFound
from sonobridge.inference.domain.model_card import ModelCard, model_task, version_key
from sonobridge.inference.handlers import Dependencies


@dataclass(frozen=True)
class StoredModel:
    """A registry entry as clients see it."""

    card: ModelCard
    loaded: bool
    pinned: bool


def _stored(deps: Dependencies, card: ModelCard, name: str, version: str) -> StoredModel:
    registry = deps.models.registry
    return StoredModel(card, registry.is_loaded(name, version), registry.pinned(name) == version)


def _resolve_version(deps: Dependencies, name: str, version: str | None) -> str:
    registry = deps.models.registry
    if version:
        return version
    pinned = registry.pinned(name)
    if pinned:
        return pinned
    versions = registry.available().get(name)
    if not versions:
        raise ModelNotFound(f"no model named {name!r} in the registry")
    return versions[-1]


def list_models(deps: Dependencies, exam_type: str = "", task: str = "") -> list[StoredModel]:
    """Return stored model versions sorted by name then version, optionally filtered."""
    registry = deps.models.registry
    found = []
    for name, versions in registry.available().items():
        for version in sorted(versions, key=version_key):
            card = registry.card(name, version)
            if exam_type and exam_type not in card.exam_types:
                continue
            if task and model_task(card) != task:
                continue
            found.append(_stored(deps, card, name, version))
    return found


def get_model(deps: Dependencies, name: str, version: str | None = None) -> StoredModel:
    """Return one model version (pinned, else latest, when version is empty)."""
    if not name:
        raise InvalidInput("model name is required")
    version = _resolve_version(deps, name, version)
    return _stored(deps, deps.models.registry.card(name, version), name, version)


def load_model(deps: Dependencies, principal: Principal, name: str, version: str) -> StoredModel:
    """Load and warm up a stored model version in this replica (admins only)."""
    principal.require_role("admin")
    deps.models.registry.card(name, version)  # 404 before any work when it is not stored
    deps.models.load(name, version)
    return get_model(deps, name, version)


def unload_model(deps: Dependencies, principal: Principal, name: str, version: str) -> StoredModel:
    """Unload a model version from this replica (admins only)."""
    principal.require_role("admin")
    deps.models.registry.card(name, version)  # 404 (or 422 for a bad name) before the replica
    if not deps.models.registry.is_loaded(name, version):
        raise Conflict(f"model {name} {version} is not loaded", reason="not_loaded")
    deps.models.unload(name, version)
    return get_model(deps, name, version)


def pin_model(deps: Dependencies, principal: Principal, name: str, version: str) -> StoredModel:
    """Serve this loaded version for requests that name no version (admins only)."""
    principal.require_role("admin")
    deps.models.registry.card(name, version)  # 404 (or 422 for a bad name) before the replica
    if not deps.models.registry.is_loaded(name, version):
        # An admin's request the replica's state contradicts (409), not an outage (503).
        raise Conflict(f"load {name} {version} before pinning it", reason="not_loaded")
    deps.models.registry.pin(name, version)
    return get_model(deps, name, version)


def card_json(deps: Dependencies, card: ModelCard) -> str:
    """Return a model's card.json text exactly as stored."""
    return deps.models.registry.card_bytes(card.name, card.version).decode()


def model_artifact(deps: Dependencies, name: str, version: str) -> tuple[ModelCard, bytes]:
    """Return a model's card and its ONNX bytes, verified against the card's hash."""
    registry = deps.models.registry
    card = registry.card(name, version)
    return card, registry.model_bytes(name, version)
