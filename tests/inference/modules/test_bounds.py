"""Physical bounds: impossible measurements become "not measurable", plausible ones pass."""

from __future__ import annotations

import pytest

from sonobridge.inference.modules.base import ModuleFinding, ModuleOutput
from sonobridge.inference.modules.bounds import within_physical_bounds


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
