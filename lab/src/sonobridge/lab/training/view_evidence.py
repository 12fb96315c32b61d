"""Which clinical modules see their own anatomy in a frame, by the serving modules' own gates."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

import numpy as np

from sonobridge.inference.domain.views import MODULE_ANATOMY
from sonobridge.inference.modules import fetal
from sonobridge.inference.modules.base import ModuleFrame
from sonobridge.inference.modules.carotid_evidence import carotid_evidence

# Modules without an evidence gate of their own: only the view check keeps frames from them.
UNGATED = frozenset(MODULE_ANATOMY) - {"carotid-imt", "fetal-biometry"}


@cache
def _fetal() -> fetal.FetalBiometryModule:
    return fetal.load()


def module_evidence(gray: np.ndarray, spacing: tuple[float, float] | None) -> frozenset[str]:
    """The modules that would measure this frame if the view check sent it to them."""
    frame = ModuleFrame(gray, spacing, "evidence", 0)
    shown = set(UNGATED)
    if carotid_evidence(frame).present:
        shown.add("carotid-imt")
    if _fetal().evidence(frame).present:
        shown.add("fetal-biometry")
    return frozenset(shown)


def manifest_spacing(realus: Path) -> dict[str, tuple[float, float] | None]:
    """Each manifest file's (row, col) mm per pixel as the app would send it, or None."""
    out: dict[str, tuple[float, float] | None] = {}
    with open(realus / "manifest.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            out[row["file"]] = parse_spacing(row["spacing_mm"])
    return out


def parse_spacing(text: str) -> tuple[float, float] | None:
    """A manifest's "row,col" mm per pixel, or None when it gives none."""
    parts = [p for p in text.split(",") if p.strip()]
    return (float(parts[0]), float(parts[1])) if len(parts) == 2 else None
