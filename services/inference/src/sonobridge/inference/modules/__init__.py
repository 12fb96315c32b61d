"""Clinical exam modules: carotid IMT, kidney size and echogenicity, focal lesions, fetal head."""

from __future__ import annotations

from sonobridge.inference.modules.base import (
    EXAM_TYPES,
    ExamModule,
    ModuleFinding,
    ModuleFrame,
    ModuleOutput,
)
from sonobridge.inference.modules.loader import load_clinical_modules

__all__ = [
    "EXAM_TYPES",
    "ExamModule",
    "ModuleFinding",
    "ModuleFrame",
    "ModuleOutput",
    "load_clinical_modules",
]
