"""How the view check's cross-validation picks its feature set and confidence floor."""

import numpy as np
import pytest

from sonobridge.lab.training.views import Choice, Selection, class_balanced


def _selection(figures: dict[Choice, tuple[int, int]]) -> Selection:
    table = {
        c: {"wrong_anatomy_exams": wrong, "frames_kept_from_their_module": kept}
        for c, (wrong, kept) in figures.items()
    }
    return Selection([0, 1], {"image": (np.zeros((2, 10)), np.zeros((2, 11)))}, table)


def test_fewest_wrong_anatomy_exams_win_even_when_they_cost_correct_frames():
    picked = _selection(
        {
            Choice("image", 0.5): (2, 4),
            Choice("image", 0.9): (1, 6),
            Choice("image+physics", 0.5): (1, 5),
        }
    ).best
    assert picked == Choice("image+physics", 0.5)


def test_a_tie_keeps_the_earlier_feature_set_and_the_lower_floor():
    picked = _selection(
        {
            Choice("image", 0.5): (0, 3),
            Choice("image", 0.9): (0, 3),
            Choice("image+physics", 0.5): (0, 3),
        }
    ).best
    assert picked == Choice("image", 0.5)


def test_class_balanced_weights_give_every_view_the_same_total_weight():
    labels = np.array([3] * 60 + [5] * 6 + [9] * 2)
    weights = class_balanced(labels)
    totals = {v: weights[labels == v].sum() for v in (3, 5, 9)}
    assert np.allclose(list(totals.values()), len(labels) / 3)
    assert weights.sum() == pytest.approx(len(labels))
