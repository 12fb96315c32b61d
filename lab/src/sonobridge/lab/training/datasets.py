"""Recipes for the synthetic training and held-out sets; a recipe plus a seed fixes every pixel."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sonobridge.lab.synthetic import (
    EXAM_TYPES,
    GENERATOR_VERSION,
    AcquisitionSpec,
    Fault,
    generate_frame,
)

QUALITY_CLASSES: list[str] = ["acceptable", *[f.value for f in Fault]]
FRAME_SIZE = 256


@dataclass
class LabelledFrames:
    """Grayscale frames (N, H, W) uint8 with integer labels and the recipe that made them."""

    frames: np.ndarray
    labels: np.ndarray
    recipe: dict


def _frame_seed(seed: int, i: int) -> int:
    return seed * 1_000_003 + i


def quality_set(seed: int, per_class: int) -> LabelledFrames:
    """Frames with exactly one fault (or none), balanced over classes and exam types."""
    frames, labels = [], []
    for i in range(per_class * len(QUALITY_CLASSES)):
        label = i % len(QUALITY_CLASSES)
        exam = EXAM_TYPES[(i // len(QUALITY_CLASSES)) % len(EXAM_TYPES)]
        faults = frozenset() if label == 0 else frozenset([Fault(QUALITY_CLASSES[label])])
        spec = AcquisitionSpec(exam_type=exam, faults=faults, height=FRAME_SIZE, width=FRAME_SIZE)
        frames.append(generate_frame(_frame_seed(seed, i), spec).image)
        labels.append(label)
    recipe = {
        "generator": "sonobridge.lab.synthetic",
        "generator_version": GENERATOR_VERSION,
        "recipe": "quality_set",
        "seed": seed,
        "per_class": per_class,
        "frame_size": [FRAME_SIZE, FRAME_SIZE],
        "exam_types": list(EXAM_TYPES),
    }
    return LabelledFrames(np.stack(frames), np.array(labels), recipe)


# Dead elements often come with other problems; the detector must not confuse those with it.
_CONFOUNDERS: list[frozenset[Fault]] = [
    frozenset(),
    frozenset(),
    frozenset([Fault.LOW_GAIN]),
    frozenset([Fault.MOTION_BLUR]),
    frozenset([Fault.WRONG_DEPTH]),
]


def probe_health_set(seed: int, n: int) -> LabelledFrames:
    """Frames with and without dead elements (half each), mixed with other faults."""
    frames, labels = [], []
    for i in range(n):
        dead = i % 2 == 1
        exam = EXAM_TYPES[(i // 2) % len(EXAM_TYPES)]
        other = _CONFOUNDERS[(i // 2) % len(_CONFOUNDERS)] if dead else _CONFOUNDERS[(i // 2) % 5]
        if not dead and (i // 2) % 7 == 3:
            other = frozenset([Fault.LOST_CONTACT])
        faults = other | ({Fault.DEAD_ELEMENTS} if dead else set())
        spec = AcquisitionSpec(
            exam_type=exam, faults=frozenset(faults), height=FRAME_SIZE, width=FRAME_SIZE
        )
        frames.append(generate_frame(_frame_seed(seed, i), spec).image)
        labels.append(int(dead))
    recipe = {
        "generator": "sonobridge.lab.synthetic",
        "generator_version": GENERATOR_VERSION,
        "recipe": "probe_health_set",
        "seed": seed,
        "n": n,
        "frame_size": [FRAME_SIZE, FRAME_SIZE],
        "exam_types": list(EXAM_TYPES),
    }
    return LabelledFrames(np.stack(frames), np.array(labels), recipe)


def build_set(recipe: dict) -> LabelledFrames:
    """Regenerate a set from the recipe stored in a model card."""
    if recipe.get("generator_version") != GENERATOR_VERSION:
        raise ValueError(
            f"card was trained on generator {recipe.get('generator_version')}, "
            f"this is {GENERATOR_VERSION}"
        )
    if recipe["recipe"] == "quality_set":
        return quality_set(recipe["seed"], recipe["per_class"])
    if recipe["recipe"] == "probe_health_set":
        return probe_health_set(recipe["seed"], recipe["n"])
    raise ValueError(f"unknown dataset recipe {recipe['recipe']!r}")
