"""Every held-out metric in the clinical cards, recomputed through the modules on a fresh set."""

import math

import pytest

from sonobridge.lab.held_out import (
    Recipe,
    carotid_metrics,
    cases,
    kidney_metrics,
    lesion_metrics,
)

SCORERS = {
    "carotid-imt": carotid_metrics,
    "kidney": kidney_metrics,
    "focal-lesions": lesion_metrics,
}
# Rates and ECEs may move by a case or two if float rounding differs across CPUs; mm by 0.02.
TOLERANCE = 0.02


def _recipe(split: dict) -> Recipe:
    lesions = split["lesions_per_scene"]
    return Recipe(
        exam_types=tuple(split["exam_types"]),
        seed=split["seed"],
        count=split["exams"],
        size=split["frame_size"][0],
        n_frames=split["frames_per_exam"],
        fault_rate=split["fault_rate"],
        faults=tuple(split["faults"]),
        n_lesions=None if isinstance(lesions, str) else lesions,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCORERS))
def test_held_out_metrics_in_card_are_reproduced_through_the_module(clinical_modules, name):
    module = clinical_modules[name]
    card = module.card
    held_out = cases(_recipe(card["training_data"]["splits"]["held_out"]))
    fresh = SCORERS[name](module, held_out)
    stored = {k: v for k, v in card["held_out"].items() if k in fresh}
    assert set(stored) == set(fresh)
    for key, value in fresh.items():
        want = stored[key]
        if isinstance(want, float) and math.isnan(want):
            assert math.isnan(value), key
        else:
            assert value == pytest.approx(want, abs=TOLERANCE), key
