"""The coded core of a finding, as events.v1 Finding carries it from inference to its readers."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class CodedFinding:
    """A coded measurement or observation with the model's confidence in it."""

    code: str
    code_system: str
    display: str
    value: float | None
    unit: str
    confidence: float
    low_confidence: bool
    abnormal: bool

    def coded(self) -> dict[str, Any]:
        """Return the coded fields alone, the value as the contract's double (None: absent)."""
        core = {f.name: getattr(self, f.name) for f in fields(CodedFinding)}
        # Modules compute with numpy: a numpy scalar must not leak into JSON or protobuf.
        core["value"] = None if self.value is None else float(self.value)
        return core
