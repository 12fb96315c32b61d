"""Synthetic generator: determinism, visible faults, ground truth and DICOM wrapping."""

import numpy as np
import pydicom
import pytest
from pydicom.uid import UltrasoundImageStorage, UltrasoundMultiFrameImageStorage
from scipy import ndimage

from sonobridge.inference.imaging.decode import decode_image
from sonobridge.lab.synthetic import AcquisitionSpec, Fault, generate_exam, generate_frame
from sonobridge.lab.synthetic.dicom import SyntheticExamContext, ultrasound_dicom_bytes


def _frame(seed, exam="abdomen", faults=(), **kw):
    spec = AcquisitionSpec(exam_type=exam, faults=frozenset(faults), **kw)
    return generate_frame(seed, spec)


def _fov_mean(frame):
    return frame.image[frame.truth.fov_mask].mean()


def test_same_seed_gives_identical_pixels_and_truth():
    a, b = _frame(5, n_lesions=1), _frame(5, n_lesions=1)
    assert np.array_equal(a.image, b.image)
    assert a.truth.pixel_spacing_mm == b.truth.pixel_spacing_mm
    assert np.array_equal(
        a.truth.anatomy["lesions"][0]["mask"], b.truth.anatomy["lesions"][0]["mask"]
    )
    assert not np.array_equal(a.image, _frame(6, n_lesions=1).image)


@pytest.mark.parametrize("exam", ["abdomen", "thyroid", "cardiac"])
def test_low_gain_darkens_the_field_of_view(exam):
    for seed in range(3):
        clean, dark = _frame(seed, exam), _frame(seed, exam, [Fault.LOW_GAIN])
        assert dark.truth.faults == ("low_gain",)
        assert _fov_mean(dark) < 0.65 * _fov_mean(clean)


def test_lost_contact_leaves_only_near_field_reverberation():
    for seed in range(3):
        lost = _frame(seed, "liver", [Fault.LOST_CONTACT])
        clean = _frame(seed, "liver")
        h = lost.image.shape[0]
        deep = lost.truth.fov_mask.copy()
        deep[: h // 3] = False
        assert lost.image[deep].mean() < 0.5 * clean.image[deep].mean()


@pytest.mark.parametrize("exam", ["kidney", "carotid", "cardiac"])
def test_dead_elements_draw_dark_lines_along_the_beam(exam):
    frame = _frame(3, exam, [Fault.DEAD_ELEMENTS])
    mask = frame.truth.dead_line_mask
    assert frame.truth.dead_lines and mask.any()
    rest = frame.truth.fov_mask & ~mask
    assert frame.image[mask].mean() < 0.6 * frame.image[rest].mean()


def test_dead_elements_stay_on_the_same_lines_across_an_exam():
    exam = generate_exam(9, AcquisitionSpec(faults=frozenset([Fault.DEAD_ELEMENTS])), n_frames=4)
    lines = {f.truth.dead_lines for f in exam.frames}
    assert len(lines) == 1 and next(iter(lines)) == exam.probe_state.dead_lines
    assert not np.array_equal(exam.frames[0].image, exam.frames[1].image)


def _gradient(frame):
    img = frame.image.astype(float)
    inner = frame.truth.fov_mask[:, 1:] & frame.truth.fov_mask[:, :-1]
    return np.abs(np.diff(img, axis=1))[inner].mean()


def test_motion_blur_removes_fine_detail():
    for seed in range(3):
        assert _gradient(_frame(seed, faults=[Fault.MOTION_BLUR])) < 0.7 * _gradient(_frame(seed))


def test_wrong_depth_frames_the_anatomy_too_deep_or_too_shallow():
    for seed in range(6):
        t = _frame(seed, faults=[Fault.WRONG_DEPTH]).truth
        ratio = t.depth_mm / t.natural_depth_mm
        assert ratio < 0.65 or ratio > 1.85
        ok = _frame(seed).truth
        assert 1.0 < ok.depth_mm / ok.natural_depth_mm < 1.35


def test_cystic_lesion_is_anechoic_with_a_known_size():
    found = 0
    for seed in range(20):
        frame = _frame(seed, "liver", n_lesions=1)
        lesion = frame.truth.anatomy["lesions"][0]
        # The speckle's point-spread blurs the rim, so judge the lesion's core.
        core = ndimage.binary_erosion(lesion["mask"], iterations=3) & frame.truth.fov_mask
        if lesion["kind"] != "cystic" or core.sum() < 30:
            continue
        found += 1
        assert frame.image[core].mean() < 0.45 * _fov_mean(frame)
        assert lesion["diameter_mm"] > 0
    assert found >= 2


def test_carotid_and_kidney_scenes_carry_measurement_ground_truth():
    carotid = _frame(1, "carotid").truth.anatomy["carotid"]
    assert 0.4 < carotid["imt_mm"] < 1.5
    assert np.all(carotid["far_media_adventitia_mm"] > carotid["far_lumen_intima_mm"])
    kidney = _frame(1, "kidney").truth.anatomy["kidney"]
    assert 70 < kidney["length_mm"] < 130 and kidney["mask"].any()


def test_native_dicom_round_trips_pixels_and_spacing():
    frame = _frame(2)
    ctx = SyntheticExamContext(device_serial="SN-42", institution="Township A")
    data = ultrasound_dicom_bytes(frame.image, frame.truth.pixel_spacing_mm, context=ctx)
    ds = pydicom.dcmread(__import__("io").BytesIO(data))
    assert ds.SOPClassUID == UltrasoundImageStorage and ds.Modality == "US"
    assert ds.DeviceSerialNumber == "SN-42" and ds.InstitutionName == "Township A"
    assert ds.StudyInstanceUID.is_valid and ds.SOPInstanceUID.is_valid
    decoded = decode_image(data)
    assert np.array_equal(decoded.frames[0], frame.image)
    assert decoded.spacing_mm == pytest.approx(frame.truth.pixel_spacing_mm, rel=1e-6)


def test_jpeg_baseline_rgb_cine_decodes_as_ybr_multiframe():
    exam = generate_exam(4, AcquisitionSpec(rgb=True, exam_type="thyroid"), n_frames=3)
    spacing = exam.frames[0].truth.pixel_spacing_mm
    data = ultrasound_dicom_bytes(exam.pixels(), spacing, encoding="jpeg-baseline")
    ds = pydicom.dcmread(__import__("io").BytesIO(data))
    assert ds.SOPClassUID == UltrasoundMultiFrameImageStorage
    assert ds.PhotometricInterpretation == "YBR_FULL_422" and int(ds.NumberOfFrames) == 3
    decoded = decode_image(data)
    assert decoded.frames.shape == (3, 256, 256)
    diff = np.abs(decoded.frames.astype(int) - exam.pixels()[..., 0].astype(int))
    assert diff.mean() < 4
