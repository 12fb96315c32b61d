"""Physical bounds of measurements: a value outside them is reported as not measurable."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from sonobridge.inference.modules.base import ModuleFinding, ModuleFrame, ModuleOutput

# (low, high) exclusive, in the finding's unit; from anatomy, not from any one model's range.
PHYSICAL_BOUNDS: dict[str, tuple[float, float]] = {
    "carotid-far-wall-imt": (0.0, 3.0),
    "carotid-plaque": (0.0, 8.0),
    # Inclusive 40-160 mm in the literature of adult and paediatric kidneys; widened by a hair
    # so that the edges themselves stay measurable.
    "kidney-length": (39.95, 160.05),
    "kidney-cortical-echogenicity-ratio": (0.0, 20.0),
    # Focal lesions the modules look for (thyroid, breast, liver) are 2-80 mm.
    "focal-lesion-cystic": (2.0, 80.0),
    "focal-lesion-solid": (2.0, 80.0),
    # Fetal heads from 10 weeks to term and beyond (HC18's own references span 57-346 mm).
    "fetal-head-circumference": (40.0, 400.0),
    "fetal-biparietal-diameter": (10.0, 110.0),
    "fetal-occipitofrontal-diameter": (15.0, 140.0),
}
# A lesion cannot be larger than the image it was found in.
_WITHIN_FIELD = frozenset({"focal-lesion-cystic", "focal-lesion-solid"})
# Counts whose members may become not measurable: such members no longer count.
_COUNTS: dict[str, frozenset[str]] = {"focal-lesion-count": _WITHIN_FIELD}


def out_of_bounds(finding: ModuleFinding, field_mm: float | None = None) -> bool:
    """Whether a finding's value is impossible: non-positive length, outside its bounds or,
    for a lesion, at least as large as the imaged field (field_mm: its larger side)."""
    if finding.value is None:
        return False
    if not math.isfinite(finding.value):
        return True
    if field_mm is not None and finding.code in _WITHIN_FIELD and finding.value >= field_mm:
        return True
    bounds = PHYSICAL_BOUNDS.get(finding.code)
    if bounds is None:
        return finding.unit == "mm" and finding.value <= 0
    low, high = bounds
    return not low < finding.value < high


def within_physical_bounds(output: ModuleOutput, field_mm: float | None = None) -> ModuleOutput:
    """Replace every out-of-bound measurement with a "not measurable" finding of its module,
    and recount counts so that a not-measurable member is no longer counted."""
    findings = []
    for f in output.findings:
        if not out_of_bounds(f, field_mm):
            findings.append(f)
            continue
        findings.append(
            replace(
                f,
                code=f"{output.module}-not-measurable",
                display=f"{f.display}: not measurable (outside physical bounds)",
                value=None,
                unit="",
                confidence=0.0,
                low_confidence=True,
                abnormal=False,
                attributes={
                    "reason": "outside physical bounds",
                    "measured_code": f.code,
                    "measured_value": str(f.value),
                },
            )
        )
    return replace(output, findings=[_recount(f, findings) for f in findings])


def _recount(finding: ModuleFinding, findings: list[ModuleFinding]) -> ModuleFinding:
    members = _COUNTS.get(finding.code)
    if members is None or finding.value is None:
        return finding
    count = sum(f.code in members for f in findings)
    if count == finding.value:
        return finding
    display = finding.display.rsplit(":", 1)[0]
    return replace(
        finding,
        value=float(count),
        display=f"{display}: {count}",
        abnormal=finding.abnormal and count > 0,
        attributes={**finding.attributes, "not_measurable": str(int(finding.value) - count)},
    )


def field_of(frames: Sequence[ModuleFrame]) -> float | None:
    """The larger side (mm) of the largest calibrated frame; None when no frame has spacing."""
    sides = [
        max(f.pixels.shape[0] * f.spacing_mm[0], f.pixels.shape[1] * f.spacing_mm[1])
        for f in frames
        if f.spacing_mm is not None
    ]
    return max(sides) if sides else None
