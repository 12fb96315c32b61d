"""Each clinical module's own anatomy check: it reports only where it sees its anatomy itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sonobridge.inference.modules import ModuleFrame
from sonobridge.inference.modules.carotid_evidence import carotid_evidence
from sonobridge.inference.modules.carotid_evidence import describe as carotid_describe
from sonobridge.inference.modules.fetal_evidence import describe as fetal_describe
from sonobridge.inference.modules.fetal_evidence import judge_head
from sonobridge.lab import hc18
from sonobridge.lab.anatomy import REALUS_ROOT
from sonobridge.lab.held_out import Recipe, cases

needs_realus = pytest.mark.skipif(
    not (REALUS_ROOT / "manifest.csv").exists(), reason="realus-dev is not beside the project"
)
needs_hc18 = pytest.mark.skipif(
    not (hc18.DEFAULT_ROOT / "hc18.csv").exists(), reason="HC18 is not beside the project"
)
# Real frames that the view check, out of fold, sent to another anatomy's module (the card's
# wrong cases), and one lung frame, each with a spacing at which the modules before their
# evidence gates reported a value on it (an IMT of 0.30 mm on a lung, heads of 54-167 mm).
PHANTOM = "frames/itkpocus/butterfly-ocular-phantom_f074.png"
RESOLUTION_PHANTOM = "frames/itkpocus/butterfly_axial-lateral-resolution-2020.png"
LUNG = "frames/pocus_lung/Pneu_northumbria_0409_set5_img1.png"


def _real(file: str, spacing_mm: float | None) -> ModuleFrame:
    gray = np.asarray(Image.open(REALUS_ROOT / file).convert("L"))
    spacing = None if spacing_mm is None else (spacing_mm, spacing_mm)
    return ModuleFrame(gray, spacing, Path(file).stem, 0)


def _declined(out) -> bool:
    return all(
        f.value is None and f.attributes.get("not_this_anatomy") == "true" for f in out.findings
    )


def test_carotid_evidence_sees_generator_carotids_and_no_other_scene():
    def frames(scene: str, count: int) -> list[ModuleFrame]:
        recipe = Recipe((scene,), seed=53, count=count, size=384, fault_rate=0.0)
        return [f for case in cases(recipe) for f in case.frames]

    carotids = frames("carotid", 6)
    others = [f for scene in ("thyroid", "kidney", "liver") for f in frames(scene, 2)]
    assert all(carotid_evidence(f).present for f in carotids)
    assert not any(carotid_evidence(f).present for f in others)


def test_a_lone_dark_blob_is_not_a_lumen_between_two_walls():
    # A cyst: dark, with a bright far wall under it, but across only half the frame.
    img = np.full((300, 300), 120, np.uint8)
    img[100:200, :160] = 15
    img[200:230, :] = 220
    out = carotid_evidence(ModuleFrame(img, (0.1, 0.1), "cyst", 0))
    assert not out.present and out.reason == "lumen not bounded by two walls across the frame"


@needs_realus
def test_carotid_module_reports_no_imt_on_a_lung_frame(clinical_modules):
    out = clinical_modules["carotid-imt"].run([_real(LUNG, 0.2)])
    assert _declined(out), out.findings


@needs_realus
@pytest.mark.parametrize("file", [PHANTOM, RESOLUTION_PHANTOM, LUNG])
def test_fetal_module_reports_no_head_on_phantoms_and_lungs(clinical_modules, file):
    out = clinical_modules["fetal-biometry"].run([_real(file, 0.1)])
    assert _declined(out), out.findings
    assert out.findings[0].attributes["reason"].startswith("not a fetal head: ")


def test_judge_head_names_each_missing_piece_of_evidence():
    assert judge_head(0.97, 0.77, 0.02, 0.97, 0.8, 180.0).present
    # Without spacing the size is not judged; everything else still is.
    assert judge_head(0.97, 0.77, 0.02, 0.97, 0.8, None).present
    out = judge_head(0.97, 0.77, 0.02, 0.5, 0.1, 20.0)
    assert not out.present
    assert out.reason == (
        "region does not fill its ellipse; no skull echo ring; "
        "head circumference outside gestational bounds"
    )


@needs_hc18
def test_real_fetal_heads_are_still_measured(clinical_modules):
    module = clinical_modules["fetal-biometry"]
    dev = hc18.subset(hc18.splits(hc18.read_index())["development"], 40)
    measured = 0
    for im in dev:
        frame = im.frame(hc18.DEFAULT_ROOT)
        measured += all(f.value is not None for f in module.run([frame]).findings)
    print(f"{measured} of {len(dev)} HC18 development heads measured behind the head evidence gate")
    assert measured >= len(dev) - 1


def test_each_gated_module_card_records_its_evidence_rule(clinical_modules):
    assert clinical_modules["carotid-imt"].card["evidence"] == carotid_describe()
    assert clinical_modules["fetal-biometry"].card["evidence"] == fetal_describe()
