"""Load the packaged clinical modules with their cards (and ONNX sessions where used)."""

from __future__ import annotations

from sonobridge.inference.modules import carotid, fetal, kidney, lesions
from sonobridge.inference.modules.base import ExamModule

# The order is the order the pipeline runs them.
_FACTORIES = [carotid.load, kidney.load, lesions.load, fetal.load]


def load_clinical_modules(runtime: object | None = None) -> list[ExamModule]:
    """Return every packaged clinical module, loaded from its card (runtime: registry/config)."""
    return [factory(runtime) for factory in _FACTORIES]
