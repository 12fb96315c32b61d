"""The lab's public API for the demo: synthetic exams and HC18 heads as DICOM bytes."""

import io
from pathlib import Path

import numpy as np
import pydicom

from sonobridge.lab.exams import (
    Fault,
    ProbeState,
    SyntheticExamContext,
    carotid_max_imt_mm,
    hc18_head,
    synthetic_exam,
)


def test_a_synthetic_exam_is_one_multiframe_instance_for_the_context_with_its_truth():
    context = SyntheticExamContext(patient_id="SYN-0042", device_serial="PROBE-09C")
    exam = synthetic_exam("kidney", 7, context, faults=frozenset({Fault.LOW_GAIN}), frames=2)
    ds = pydicom.dcmread(io.BytesIO(exam.dicom))
    assert ds.PatientID == "SYN-0042"
    assert ds.DeviceSerialNumber == "PROBE-09C"
    assert int(ds.NumberOfFrames) == 2
    assert exam.faults == [Fault.LOW_GAIN.value]
    assert "kidney" in exam.anatomy


def test_the_same_seed_gives_the_same_pixels_and_dead_lines():
    broken = ProbeState.with_dead_elements(np.random.default_rng(3), 128)
    args = ("abdomen", 5, SyntheticExamContext())
    kw = {"faults": frozenset({Fault.DEAD_ELEMENTS}), "probe_state": broken, "frames": 1}
    a, b = synthetic_exam(*args, **kw), synthetic_exam(*args, **kw)
    pixels = [pydicom.dcmread(io.BytesIO(e.dicom)).pixel_array for e in (a, b)]
    assert (pixels[0] == pixels[1]).all()
    assert a.dead_lines == b.dead_lines == list(broken.dead_lines)
    assert a.dead_lines


def test_the_carotid_wall_is_fixed_by_the_seed():
    assert carotid_max_imt_mm(4) == carotid_max_imt_mm(4) > 0


def test_without_hc18_there_is_no_head(tmp_path: Path):
    assert hc18_head(SyntheticExamContext(), tmp_path) is None
