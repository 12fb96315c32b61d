"""Physical bounds: impossible measurements become "not measurable", plausible ones pass."""

from __future__ import annotations

import numpy as np
import pytest

from sonobridge.inference.modules.base import ModuleFinding, ModuleFrame, ModuleOutput
from sonobridge.inference.modules.bounds import field_of, within_physical_bounds


def _finding(code: str, value: float | None, unit: str = "mm") -> ModuleFinding:
    return ModuleFinding(code, "sys", code, value, unit, 1.0, False, True, "1.2.3")


@pytest.mark.parametrize(
    ("code", "value", "kept"),
    [
        ("carotid-far-wall-imt", -0.152, False),
        ("carotid-far-wall-imt", 0.0, False),
        ("carotid-far-wall-imt", 0.7, True),
        ("carotid-far-wall-imt", 3.0, False),
        ("kidney-length", 39.0, False),
        ("kidney-length", 40.0, True),
        ("kidney-length", 161.0, False),
        ("focal-lesion-solid", 92.0, False),
        ("focal-lesion-cystic", 12.0, True),
        ("some-future-length", -1.0, False),
    ],
)
def test_out_of_bound_values_become_not_measurable(code, value, kept):
    out = within_physical_bounds(ModuleOutput("mod", "1.0.0", [_finding(code, value)], {}, {}))
    (f,) = out.findings
    if kept:
        assert (f.code, f.value) == (code, value)
    else:
        assert f.code == "mod-not-measurable" and f.value is None and not f.abnormal
        assert f.attributes["measured_code"] == code


def test_findings_without_a_value_pass_unchanged():
    finding = _finding("kidney-not-measurable", None, "")
    out = within_physical_bounds(ModuleOutput("kidney", "1.0.0", [finding], {}, {}))
    assert out.findings == [finding]


@pytest.mark.parametrize(
    ("code", "value", "kept"),
    [
        ("fetal-head-circumference", 30.0, False),
        ("fetal-head-circumference", 180.0, True),
        ("fetal-head-circumference", 420.0, False),
        ("fetal-biparietal-diameter", -4.0, False),
        ("fetal-biparietal-diameter", 60.0, True),
        ("fetal-occipitofrontal-diameter", 150.0, False),
    ],
)
def test_fetal_head_measurements_outside_any_gestation_become_not_measurable(code, value, kept):
    out = within_physical_bounds(ModuleOutput("fetal", "1.0.0", [_finding(code, value)], {}, {}))
    assert (out.findings[0].code == code) is kept


def test_a_lesion_as_large_as_the_imaged_field_is_not_measurable_and_not_counted():
    count = ModuleFinding(
        "focal-lesion-count", "sys", "Focal lesions: 2", 2.0, "{count}", 0.9, False, True, "1"
    )
    lesions = [_finding("focal-lesion-solid", 45.0), _finding("focal-lesion-cystic", 12.0)]
    frame = ModuleFrame(np.zeros((400, 300), np.uint8), (0.1, 0.1), "1", 0)
    out = within_physical_bounds(
        ModuleOutput("focal-lesions", "1.0.0", [count, *lesions], {}, {}), field_of([frame])
    )
    recount, too_big, cyst = out.findings
    assert field_of([frame]) == pytest.approx(40.0)
    assert too_big.code == "focal-lesions-not-measurable" and too_big.value is None
    assert cyst.value == 12.0
    assert recount.value == 1.0 and recount.display == "Focal lesions: 1"
    assert recount.attributes["not_measurable"] == "1"


def test_a_count_left_with_no_measurable_lesion_is_zero_and_not_abnormal():
    count = ModuleFinding(
        "focal-lesion-count", "sys", "Focal lesions: 1", 1.0, "{count}", 0.9, False, True, "1"
    )
    out = within_physical_bounds(
        ModuleOutput(
            "focal-lesions", "1.0.0", [count, _finding("focal-lesion-solid", 92.0)], {}, {}
        )
    )
    assert out.findings[0].value == 0.0 and not out.findings[0].abnormal


def test_a_frame_without_spacing_has_no_field():
    assert field_of([ModuleFrame(np.zeros((4, 4), np.uint8), None, "1", 0)]) is None
