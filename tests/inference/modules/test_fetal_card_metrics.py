"""The fetal-biometry card's development figures, recomputed through module.run on real HC18."""

import math
import os
from pathlib import Path

import pytest

from sonobridge.lab import hc18

ROOT = Path(os.environ.get("SONOBRIDGE_HC18", hc18.DEFAULT_ROOT))
# Rates and ECEs may move by an image if float rounding differs across CPUs; mm by 0.05.
TOLERANCE = {"mm": 0.05, "rate": 0.03}
needs_hc18 = pytest.mark.skipif(
    not (ROOT / "hc18.csv").exists(),
    reason=f"HC18 not found at {ROOT} (../shared/datasets/hc18; set SONOBRIDGE_HC18)",
)


def _assert_same(fresh: dict, stored: dict) -> None:
    assert set(fresh) <= set(stored), set(fresh) - set(stored)
    for key, value in fresh.items():
        want = stored[key]
        if isinstance(want, float) and math.isnan(want):
            assert math.isnan(value), key
        else:
            tol = TOLERANCE["mm"] if key.endswith("_mm") else TOLERANCE["rate"]
            assert value == pytest.approx(want, abs=tol), key


@pytest.fixture(scope="module")
def development(clinical_modules):
    module = clinical_modules["fetal-biometry"]
    return module, hc18.splits(hc18.read_index(ROOT))["development"]


@needs_hc18
@pytest.mark.slow
def test_development_subset_figures_in_the_card_are_reproduced_through_the_module(development):
    module, dev = development
    stored = module.card["development_test_subset"]
    fresh = hc18.metrics(module, hc18.subset(dev, stored["images"]), ROOT)
    _assert_same(fresh, stored)


@needs_hc18
@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("SONOBRIDGE_FULL_CARD"),
    reason="the whole development split takes minutes; SONOBRIDGE_FULL_CARD=1 runs it",
)
def test_whole_development_split_figures_in_the_card_are_reproduced(development):
    module, dev = development
    _assert_same(hc18.metrics(module, dev, ROOT), module.card["held_out"])


@needs_hc18
def test_splits_keep_each_subject_in_one_split_and_cover_every_image():
    images = hc18.read_index(ROOT)
    parts = hc18.splits(images)
    subjects = [{im.subject for im in part} for part in parts.values()]
    for i, a in enumerate(subjects):
        for b in subjects[i + 1 :]:
            assert not a & b
    assert sum(len(p) for p in parts.values()) == len(images)
    # Two-image subjects exist (017_HC, 017_2HC), so the grouping is doing something.
    assert len({im.subject for im in images}) < len(images)


def test_card_states_the_figures_beside_the_paper_and_credits_the_authors(clinical_modules):
    card = clinical_modules["fetal-biometry"].card
    dev = card["held_out"]
    for key in ("hc_mean_abs_diff_mm", "hc_abs_diff_sd_mm", "dice", "hc_within_3mm"):
        assert isinstance(dev[key], float), key
    assert "confidence_ece" in dev
    assert card["published_reference"]["mean_abs_diff_mm"] == 2.8
    assert card["published_reference"]["sd_mm"] == 3.3
    assert "van den Heuvel" in card["training_data"]["credit"]
    assert "CC BY 4.0" in card["training_data"]["credit"]
    assert card["disclaimer"] == "reference model, not for clinical use"
    assert "Hadlock" in card["measurement"]["gestational_age"]


def test_the_packaged_card_passes_the_registry_s_card_validation():
    from sonobridge.inference.domain.model_card import ModelCard
    from sonobridge.inference.modules.common import MODELS_DIR

    card = ModelCard.from_json((MODELS_DIR / "fetal-biometry" / "1.0.0" / "card.json").read_text())
    assert card.exam_types == ("obstetric",) and len(card.sha256) == 64
