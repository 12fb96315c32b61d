"""Exam-module contract: frames in, coded findings with confidence and overlays out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sonobridge.common.findings import CodedFinding

EXAM_TYPES = frozenset(
    {"carotid", "thyroid", "abdomen", "kidney", "liver", "obstetric", "cardiac", "other"}
)


@dataclass(frozen=True)
class ModuleFrame:
    """One decoded grey frame of an exam with its pixel spacing (row, col mm per pixel)."""

    pixels: np.ndarray
    spacing_mm: tuple[float, float] | None
    sop_instance_uid: str
    frame_index: int
    # Gestational age (weeks) by the app's dates, for obstetric exams; None when not sent.
    app_gestational_age_weeks: float | None = None


@dataclass(frozen=True)
class ModuleFinding(CodedFinding):
    """A coded measurement or observation with its confidence and where it was made."""

    sop_instance_uid: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class ModuleOutput:
    """What one module concluded for one exam: findings, overlay PNGs and JSON-able details."""

    module: str
    version: str
    findings: list[ModuleFinding]
    overlays: dict[str, bytes]
    details: dict[str, Any]


@runtime_checkable
class ExamModule(Protocol):
    """A clinical module that runs on the frames of exams of its exam types."""

    name: str
    version: str
    exam_types: frozenset[str]

    def run(self, frames: Sequence[ModuleFrame]) -> ModuleOutput:
        """Measure the exam's frames and return coded findings with overlays."""
        ...


@dataclass(frozen=True)
class Evidence:
    """Whether a frame shows a module's own anatomy, by the module's own look, and why not."""

    present: bool
    reason: str = ""
    measures: dict[str, float] = field(default_factory=dict)
