"""Modules hand the DICOM SR each measurement's outline in image pixels, matching its value."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
from inference.modules.test_clinical_modules import _exam

from sonobridge.lab import hc18


def _length_mm(points, spacing) -> float:
    (x0, y0), (x1, y1) = points
    return math.hypot((x1 - x0) * spacing[1], (y1 - y0) * spacing[0])


def _on_frame(graphic, frames) -> None:
    frame = next(
        f
        for f in frames
        if f.sop_instance_uid == graphic["sop_instance_uid"]
        and f.frame_index == graphic["frame_index"]
    )
    rows, cols = frame.pixels.shape[:2]
    pts = np.asarray(graphic["points"])
    assert (pts[:, 0] >= 0).all() and (pts[:, 0] <= cols).all()
    assert (pts[:, 1] >= 0).all() and (pts[:, 1] <= rows).all()


@pytest.mark.parametrize(
    ("name", "exam_type", "seed", "code"),
    [("kidney", "kidney", 9101, "kidney-length"), ("carotid-imt", "carotid", 9001, None)],
)
def test_line_measurements_carry_a_caliper_as_long_as_their_value(
    clinical_modules, name, exam_type, seed, code
):
    case = _exam(exam_type, seed, size=384)
    out = clinical_modules[name].run(case.frames)
    graphics = out.details["graphics"]
    assert graphics
    for g in graphics:
        _on_frame(g, case.frames)
        assert g["graphic_type"] == "POLYLINE" and len(g["points"]) == 2
    if code:
        finding = next(f for f in out.findings if f.code == code)
        line = next(g for g in graphics if g["local_code"] == code)
        assert _length_mm(line["points"], case.frames[0].spacing_mm) == pytest.approx(
            finding.value, abs=0.2
        )
    else:
        # The IMT caliper spans one window's intima-media: a fraction of a mm to a few mm.
        imt = next(g for g in graphics if g["local_code"] == "carotid-far-wall-imt")
        assert 0.2 < _length_mm(imt["points"], case.frames[0].spacing_mm) < 3.0


def test_thyroid_lesions_carry_a_closed_outline_per_reported_lesion(clinical_modules):
    case = _exam("thyroid", 9201, n_lesions=1)
    out = clinical_modules["focal-lesions"].run(case.frames)
    lesions = [
        f for f in out.findings if f.code.startswith("focal-lesion-") and "count" not in f.code
    ]
    outlines = out.details["graphics"]
    assert len(outlines) == len(lesions) >= 1
    for g in outlines:
        _on_frame(g, case.frames)
        assert len(g["points"]) >= 4 and g["points"][0] == g["points"][-1]


HC18_ROOT = Path(os.environ.get("SONOBRIDGE_HC18", hc18.DEFAULT_ROOT))


@pytest.mark.skipif(not (HC18_ROOT / "hc18.csv").exists(), reason="HC18 not in ../shared")
def test_fetal_head_carries_the_hc_ellipse_and_its_axes(clinical_modules):
    dev = hc18.splits(hc18.read_index(HC18_ROOT))["development"]
    frame = next(im for im in dev if im.filename == "206_HC.png").frame(HC18_ROOT)
    out = clinical_modules["fetal-biometry"].run([frame])
    found = {f.code: f for f in out.findings}
    by_code = {g["local_code"]: g for g in out.details["graphics"]}
    ellipse = by_code["fetal-head-circumference"]
    assert ellipse["graphic_type"] == "ELLIPSE" and len(ellipse["points"]) == 4
    _on_frame(ellipse, [frame])
    major = _length_mm(ellipse["points"][:2], frame.spacing_mm)
    minor = _length_mm(ellipse["points"][2:], frame.spacing_mm)
    assert major == pytest.approx(found["fetal-occipitofrontal-diameter"].value, abs=0.2)
    assert minor == pytest.approx(found["fetal-biparietal-diameter"].value, abs=0.2)
