"""The view check's card: complete, hash-true, honest about its views; its figures reproduce."""

import hashlib
import json

import numpy as np
import pytest

from sonobridge.inference.imaging.preprocess import InputSpec, to_tensor
from sonobridge.inference.runtime.registry import PACKAGED_MODELS_ROOT
from sonobridge.lab.evaluation import multiclass_metrics
from sonobridge.lab.training.views import UNCLAIMED, VIEWS, synthetic_frames

ROOT = PACKAGED_MODELS_ROOT / "models" / "view-check" / "1.0.0"
TOLERANCE = 0.01


def _card() -> dict:
    return json.loads((ROOT / "card.json").read_text())


def test_card_is_complete_and_matches_its_model_file():
    card = _card()
    data = (ROOT / "model.onnx").read_bytes()
    assert card["sha256"] == hashlib.sha256(data).hexdigest() and len(data) < 256 * 1024
    assert card["disclaimer"] == "reference model, not for clinical use"
    assert card["labels"] == VIEWS
    assert set(card["claimed_views"]) == set(VIEWS) - set(UNCLAIMED)
    cv = card["held_out"]["real_cross_validation"]
    assert "never in two folds" in cv["method"] and cv["groups"] >= 30
    # Every real frame appears once in the confusion matrix (out of fold).
    assert sum(sum(row.values()) for row in cv["confusion_matrix"].values()) == cv["frames"]
    assert "van den Heuvel" in card["training_data"]["real"]["credit"]


@pytest.mark.slow
def test_generator_held_out_figures_reproduce_through_serving(loop, registry):
    card = _card()
    loop.run_until_complete(registry.load("view-check"))
    held = synthetic_frames("held_out")
    spec = InputSpec("image", 128, 128)
    x = np.concatenate([to_tensor(f.gray, spec) for f in held])
    probs = np.concatenate(
        [
            loop.run_until_complete(registry.infer("view-check", x[i : i + 16]))["probabilities"]
            for i in range(0, len(x), 16)
        ]
    )
    got = multiclass_metrics(probs, np.array([f.view for f in held]), VIEWS)
    assert got["accuracy"] == pytest.approx(
        card["held_out"]["generator"]["accuracy"], abs=TOLERANCE
    )
