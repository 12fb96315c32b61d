"""The view check's card: complete, hash-true, honest about its views; its figures reproduce."""

import hashlib
import json
import os

import numpy as np
import pytest

from sonobridge.inference.imaging.preprocess import InputSpec, to_tensor
from sonobridge.inference.runtime.registry import PACKAGED_MODELS_ROOT
from sonobridge.lab.anatomy import MAX_ISSUE
from sonobridge.lab.evaluation import multiclass_metrics
from sonobridge.lab.training.views import (
    HC18_ROOT,
    REALUS_ROOT,
    UNCLAIMED,
    VERSION,
    VIEWS,
    nested_real_cross_validation,
    real_cross_validation,
    synthetic_frames,
)

ROOT = PACKAGED_MODELS_ROOT / "models" / "view-check" / VERSION
TOLERANCE = 0.01
FULL_CARD = pytest.mark.skipif(
    not os.environ.get("SONOBRIDGE_FULL_CARD")
    or not (REALUS_ROOT / "manifest.csv").exists()
    or not (HC18_ROOT / "hc18.csv").exists(),
    reason="head fits take minutes (5, nested 50); SONOBRIDGE_FULL_CARD=1 runs them (with the "
    "datasets; OPENBLAS_NUM_THREADS=1 makes them several times faster on a busy CPU)",
)


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
    assert "reference_distance" in card["outputs"]


def _print_out_of_fold(cv: dict) -> None:
    exams = cv["real_exams"]
    before = exams["without_module_evidence_gates"]
    print(
        f"out of fold: {exams['wrong_anatomy_exams']} of {exams['exams']} realus-dev exams get "
        f"a finding from a module of another anatomy ({100 * exams['wrong_anatomy_rate']:.1f}%): "
        f"{exams['wrong_cases']}; {exams['frames_kept_from_their_module']} of "
        f"{exams['frames_with_a_module']} frames kept from their own module"
    )
    print(
        f"  without the modules' evidence gates: {before['wrong_anatomy_exams']} exams reach a "
        f"module of another anatomy ({before['wrong_cases']}); "
        f"{before['frames_kept_from_their_module']} frames kept from their own module"
    )
    views = list(cv["confusion_matrix"])
    print("labelled \\ served  " + " ".join(f"{v[:8]:>8}" for v in views))
    for row, counts in cv["confusion_matrix"].items():
        print(f"{row:>18}  " + " ".join(f"{counts[v]:>8}" for v in views))


def test_out_of_fold_real_exam_figures_are_consistent_and_printed():
    cv = _card()["held_out"]["real_cross_validation"]
    _print_out_of_fold(cv)
    exams = cv["real_exams"]
    # Every realus-dev group is an exam of the denominator, none dropped.
    assert exams["exams"] == 28
    assert exams["wrong_anatomy_exams"] == len(exams["wrong_cases"])
    rows = {(r["min_confidence"], r["nearest_reference"]): r for r in cv["abstention"]["rows"]}
    served = rows[(_card()["thresholds"]["min_confidence"], True)]
    assert served["wrong_anatomy_exams"] == exams["wrong_anatomy_exams"]
    # The nearest-reference rule is why the served figure is lower than a confidence floor's.
    assert served["wrong_anatomy_exams"] < rows[(0.99, False)]["wrong_anatomy_exams"]
    # A module's evidence gate only ever declines: it removes wrong cases and can keep frames
    # from their own module, never the reverse.
    before = exams["without_module_evidence_gates"]
    assert set(exams["wrong_cases"]) <= set(before["wrong_cases"])
    assert exams["frames_kept_from_their_module"] >= before["frames_kept_from_their_module"]


def test_nested_selection_scores_each_outer_fold_with_its_inner_pick():
    card = _card()
    nested = card["held_out"]["nested_selection"]
    _print_out_of_fold(nested)
    exams = nested["real_exams"]
    assert exams["exams"] == 28 and exams["wrong_anatomy_exams"] == len(exams["wrong_cases"])
    assert sum(sum(row.values()) for row in nested["confusion_matrix"].values()) == nested["frames"]
    selection = nested["selection"]
    assert len(selection["inner_picks"]) == 5
    rows = selection["rows"]
    # Serving's own choice (image features, the card's floor) is one of the scored rows, and
    # scores as the card's own CV does.
    served = next(
        r
        for r in rows
        if r["features"] == "image" and r["min_confidence"] == card["thresholds"]["min_confidence"]
    )
    cv = card["held_out"]["real_cross_validation"]["real_exams"]
    assert served["wrong_anatomy_exams"] == cv["wrong_anatomy_exams"]
    assert served["frames_kept_from_their_module"] == cv["frames_kept_from_their_module"]


@pytest.mark.parametrize("balanced", [False, True])
def test_stratified_nested_selection_keeps_every_class_in_training_and_is_printed(balanced):
    card = _card()
    key = "nested_selection_stratified" + ("_balanced" if balanced else "")
    nested = card["held_out"][key]
    _print_out_of_fold(nested)
    assert nested["class_balanced"] is balanced
    split = nested["split"]
    assert split["name"] == "stratified" and split["outer_and_inner"]
    assert "seed 34" in split["rule"] and "never in two folds" in split["rule"]
    exams = nested["real_exams"]
    assert exams["exams"] == 28 and exams["wrong_anatomy_exams"] == len(exams["wrong_cases"])
    assert sum(sum(row.values()) for row in nested["confusion_matrix"].values()) == nested["frames"]
    # Both real "other" groups were scored out of fold, each by a model trained on the other.
    assert sum(nested["confusion_matrix"]["other"].values()) == 4
    assert len(nested["selection"]["inner_picks"]) == 5


def test_out_of_fold_wrong_anatomy_exams_meet_the_issue_target():
    # Issue 16: wrong-anatomy findings on <= 5% of real exams, here out of fold under every
    # protocol the card records. The view check alone leaves 2-4 of 28 exams reaching a module
    # of another anatomy (busi:benign_77 as carotid; Butterfly phantoms and pocus lungs as
    # fetal heads); each module's own evidence gate, fixed without realus-dev, declines them.
    held_out = _card()["held_out"]
    for key in (
        "real_cross_validation",
        "nested_selection",
        "nested_selection_stratified",
        "nested_selection_stratified_balanced",
    ):
        cv = held_out[key]
        assert 100 * cv["real_exams"]["wrong_anatomy_rate"] <= MAX_ISSUE


@FULL_CARD
def test_out_of_fold_real_exam_figures_reproduce():
    cv = real_cross_validation()
    _print_out_of_fold(cv)
    card = _card()["held_out"]["real_cross_validation"]
    assert cv["real_exams"] == card["real_exams"]
    assert cv["confusion_matrix"] == card["confusion_matrix"]


@FULL_CARD
@pytest.mark.parametrize(
    ("split", "balanced"), [("grouped", False), ("stratified", False), ("stratified", True)]
)
def test_nested_selection_reproduces(split, balanced):
    nested = nested_real_cross_validation(split=split, balanced=balanced)
    _print_out_of_fold(nested)
    key = "nested_selection" + ("" if split == "grouped" else f"_{split}")
    key += "_balanced" if balanced else ""
    card = _card()["held_out"][key]
    assert nested["real_exams"] == card["real_exams"]
    assert nested["selection"]["inner_picks"] == card["selection"]["inner_picks"]


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
