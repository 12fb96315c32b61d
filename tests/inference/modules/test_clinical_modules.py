"""Clinical modules through their interface: findings, units, overlays and low confidence."""

import io
import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from sonobridge.inference.modules import EXAM_TYPES, ExamModule, ModuleFrame
from sonobridge.lab.held_out import Recipe, cases


def _exam(exam_type: str, seed: int, size: int = 256, n_lesions=None, frames: int = 2):
    recipe = Recipe(
        (exam_type,),
        seed=seed,
        count=1,
        size=size,
        n_frames=frames,
        fault_rate=0.0,
        n_lesions=n_lesions,
    )
    return cases(recipe)[0]


def _overlay(out, name):
    img = Image.open(io.BytesIO(out.overlays[f"{name}.png"]))
    assert img.format == "PNG"
    return np.asarray(img.convert("RGB")).astype(int)


def _coloured(rgb: np.ndarray) -> np.ndarray:
    return (np.abs(rgb[..., 0] - rgb[..., 1]) > 40) | (np.abs(rgb[..., 1] - rgb[..., 2]) > 40)


def test_every_packaged_module_meets_the_exam_module_contract(clinical_modules):
    assert set(clinical_modules) == {"carotid-imt", "kidney", "focal-lesions", "fetal-biometry"}
    for module in clinical_modules.values():
        assert isinstance(module, ExamModule)
        assert module.exam_types <= EXAM_TYPES
        assert module.card["disclaimer"] == "reference model, not for clinical use"
        assert module.version == module.card["version"]


def test_carotid_exam_reports_imt_in_mm_near_truth_and_marks_the_far_wall(clinical_modules):
    module = clinical_modules["carotid-imt"]
    case = _exam("carotid", seed=9001, size=384)
    out = module.run(case.frames)
    imt = next(f for f in out.findings if f.code == "carotid-far-wall-imt")
    assert imt.unit == "mm"
    assert abs(imt.value - case.anatomy[0]["carotid"]["imt_mm"]) < 0.3
    assert 0.5 <= imt.confidence <= 1.0
    json.dumps(out.details)
    rgb = _overlay(out, "carotid-imt")
    assert rgb.shape[:2] == case.frames[0].pixels.shape
    # The LI (green) marks lie on the far wall, below the lumen the module found.
    green = (rgb[..., 1] > 200) & (rgb[..., 0] < 60) & (rgb[..., 2] < 60)
    rows = np.nonzero(green)[0]
    _, bottom = module.estimate([w for w in map(_wall, case.frames) if w])["pooled"].best.lumen_rows
    assert rows.size and np.median(rows) >= bottom - 3


def _wall(frame):
    from sonobridge.inference.modules.carotid import measure_frame

    return measure_frame(frame)


def test_kidney_exam_reports_length_and_echogenicity_with_an_outlined_kidney(clinical_modules):
    module = clinical_modules["kidney"]
    case = _exam("kidney", seed=9002, n_lesions=0)
    out = module.run(case.frames)
    length = next(f for f in out.findings if f.code == "kidney-length")
    assert length.unit == "mm"
    assert abs(length.value - case.anatomy[0]["kidney"]["length_mm"]) < 25
    echo = next(f for f in out.findings if f.code == "kidney-cortical-echogenicity-ratio")
    assert echo.unit == "1" and echo.value > 0
    rgb = _overlay(out, "kidney")
    mask = case.anatomy[0]["kidney"]["mask"]
    marked = _coloured(rgb)
    assert marked.any()
    # Below the caption, most of the outline lies near the true kidney.
    near = ndimage.binary_dilation(mask, iterations=8)
    assert (marked[20:] & near[20:]).sum() >= 0.6 * marked[20:].sum()


def test_thyroid_cyst_is_found_sized_and_called_cystic(clinical_modules):
    module = clinical_modules["focal-lesions"]
    for seed in range(9100, 9140):
        case = _exam("thyroid", seed=seed, n_lesions=1)
        lesion = case.anatomy[0]["lesions"][0]
        if (
            lesion["kind"] == "cystic"
            and (lesion["mask"] & case.fov_mask).sum() == lesion["mask"].sum()
        ):
            break
    out = module.run(case.frames)
    count = out.findings[0]
    assert count.code == "focal-lesion-count" and count.unit == "{count}"
    lesions = [f for f in out.findings if f.code.startswith("focal-lesion-") and f.unit == "mm"]
    assert lesions, out.details
    best = lesions[0]
    assert best.attributes["kind"] == "cystic"
    assert abs(best.value - lesion["diameter_mm"]) < 0.35 * lesion["diameter_mm"]
    assert "cystic" in best.display
    assert _coloured(_overlay(out, "focal-lesions")).any()


def test_frames_without_pixel_spacing_are_not_measured_and_go_to_an_expert(clinical_modules):
    case = _exam("carotid", seed=9003, size=384, frames=1)
    frame = case.frames[0]
    blind = [ModuleFrame(frame.pixels, None, frame.sop_instance_uid, 0)]
    out = clinical_modules["carotid-imt"].run(blind)
    (finding,) = out.findings
    assert finding.value is None and finding.low_confidence and finding.confidence == 0.0
    assert finding.attributes["reason"] == "no pixel spacing"


def test_a_frame_without_a_carotid_is_labelled_not_measurable(clinical_modules):
    speckle = np.random.default_rng(5).integers(90, 140, (384, 384)).astype(np.uint8)
    out = clinical_modules["carotid-imt"].run([ModuleFrame(speckle, (0.1, 0.1), "2.25.1", 0)])
    assert [f.code for f in out.findings] == ["carotid-imt-not-measurable"]
    assert out.findings[0].low_confidence


@pytest.mark.parametrize("name", ["carotid-imt", "kidney"])
def test_low_confidence_label_follows_the_cards_threshold(clinical_modules, name):
    module = clinical_modules[name]
    threshold = module.card["thresholds"]["low_confidence_below"]
    exam_type = "carotid" if name == "carotid-imt" else "kidney"
    seen = []
    for seed in range(9200, 9212):
        case = _exam(
            exam_type, seed=seed, size=384 if exam_type == "carotid" else 256, n_lesions=0, frames=1
        )
        for f in module.run(case.frames).findings:
            if f.value is None:
                continue
            assert f.low_confidence == (
                f.confidence < threshold or f.attributes.get("cut_off_by_image_edge") == "true"
            )
            seen.append(f.low_confidence)
    assert seen


def test_colour_or_float_frames_are_rejected_with_a_clear_error(clinical_modules):
    bad = ModuleFrame(np.zeros((64, 64), dtype=np.float32), (0.1, 0.1), "2.25.2", 0)
    with pytest.raises(ValueError, match="uint8"):
        clinical_modules["carotid-imt"].run([bad])
