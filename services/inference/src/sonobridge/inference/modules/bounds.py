"""Physical bounds of measurements: a value outside them is reported as not measurable."""

from __future__ import annotations

from dataclasses import replace

from sonobridge.inference.modules.base import ModuleFinding, ModuleOutput

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
}


def out_of_bounds(finding: ModuleFinding) -> bool:
    """Whether a finding's value is impossible: non-positive length or outside its bounds."""
    if finding.value is None:
        return False
    bounds = PHYSICAL_BOUNDS.get(finding.code)
    if bounds is None:
        return finding.unit == "mm" and finding.value <= 0
    low, high = bounds
    return not low < finding.value < high


def within_physical_bounds(output: ModuleOutput) -> ModuleOutput:
    """Replace every out-of-bound measurement with a "not measurable" finding of its module."""
    findings = []
    for f in output.findings:
        if not out_of_bounds(f):
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
    return replace(output, findings=findings)
