"""The demo's obstetric exam: a real HC18 head wrapped as DICOM with its spacing, or skipped."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom import dcmread

from sonobridge.lab import hc18
from sonobridge.node.scenario import demo_exams, hc18_exam


def test_without_hc18_the_demo_keeps_its_other_exams_and_has_no_obstetric_one(tmp_path: Path):
    assert hc18_exam(10, tmp_path) is None
    exams = demo_exams(hc18_root=tmp_path)
    assert len(exams) == 9 and all(e.exam_type != "obstetric" for e in exams)


@pytest.mark.skipif(
    not (hc18.DEFAULT_ROOT / "hc18.csv").exists(), reason="no HC18 in ../shared/datasets/hc18"
)
def test_the_obstetric_exam_is_an_hc18_image_with_its_pixel_spacing():
    plan = hc18_exam(10)
    assert plan is not None and plan.exam_type == "obstetric"
    ds = dcmread(io.BytesIO(plan.instances[0]))
    name = plan.truth.split(":")[0].removeprefix("HC18 ")
    image = next(im for im in hc18.read_index() if im.filename == name)
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx([image.pixel_mm] * 2, rel=1e-5)
    assert (ds.pixel_array == image.pixels(hc18.DEFAULT_ROOT)).all()
    # A development-split image: the module never trained or calibrated on it.
    assert image in hc18.splits(hc18.read_index())["development"]
