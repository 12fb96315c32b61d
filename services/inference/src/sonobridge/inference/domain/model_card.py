"""Model card: what a registered model does, expects, outputs and how well it did held-out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sonobridge.inference.domain.errors import ModelIntegrityError

REQUIRED_FIELDS = (
    "name",
    "version",
    "task",
    "exam_types",
    "input",
    "labels",
    "thresholds",
    "calibration",
    "training_data",
    "held_out",
    "intended_use",
    "disclaimer",
    "sha256",
)


@dataclass(frozen=True)
class ModelCard:
    """A parsed card.json; raw keeps every field for clients that download it."""

    name: str
    version: str
    task: str
    exam_types: tuple[str, ...]
    labels: tuple[str, ...]
    thresholds: dict[str, Any]
    sha256: str
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, text: bytes | str) -> ModelCard:
        """Parse and validate a card; a missing field is an integrity error naming it."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelIntegrityError(f"card.json is not valid JSON: {exc}") from exc
        missing = [f for f in REQUIRED_FIELDS if f not in raw]
        if missing:
            raise ModelIntegrityError(f"card.json lacks required fields: {', '.join(missing)}")
        return cls(
            name=raw["name"],
            version=raw["version"],
            task=raw["task"],
            exam_types=tuple(raw["exam_types"]),
            labels=tuple(raw["labels"]),
            thresholds=dict(raw["thresholds"]),
            sha256=raw["sha256"],
            raw=raw,
        )


# Registration stages of a version beside the serving (pinned) one: a shadow runs on every
# exam for the comparison only; a retired version keeps its card and past verdicts but runs
# on nothing and is never loaded at start-up.
SHADOW_STAGE = "shadow"
RETIRED_STAGE = "retired"


def in_shadow(raw: dict[str, Any]) -> bool:
    """Return True when a card was registered in shadow beside the serving version."""
    return bool((raw.get("registration") or {}).get("stage") == SHADOW_STAGE)


def set_aside(raw: dict[str, Any]) -> bool:
    """Return True when a card is registered in shadow or retired: never a default version."""
    return (raw.get("registration") or {}).get("stage") in (SHADOW_STAGE, RETIRED_STAGE)


def version_key(version: str) -> tuple[int, ...]:
    """Order versions numerically (1.10.0 after 1.9.0); non-numeric parts sort first."""
    return tuple(int(p) if p.isdigit() else -1 for p in version.split("."))


# Kinds a card's "kind" field may start with, as the contract's ModelTask names them.
TASKS = ("quality", "classification", "detection", "segmentation", "measurement", "probe_health")


def model_task(card: ModelCard) -> str:
    """Return what a model does ("quality", "segmentation", ...; "other"), from name or task."""
    if card.name == "image-quality" or card.task.lower().startswith("frame quality"):
        return "quality"
    if card.name == "probe-health" or "dead" in card.task.lower():
        return "probe_health"
    kind = str(card.raw.get("kind", "")).lower()
    for word in TASKS:
        if kind.startswith(word):
            return word
    return "other"


def rank_labels(card: ModelCard, outputs: dict[str, Any]) -> list[tuple[str, float]]:
    """Return the card's labels with one image's probabilities, best first; [] if not that."""
    probs = outputs.get("probabilities")
    if probs is None or probs.ndim != 2 or probs.shape[0] != 1:
        return []
    row = probs[0]
    if row.shape[0] != len(card.labels):
        return []
    return sorted(zip(card.labels, row.tolist(), strict=True), key=lambda lp: -lp[1])
