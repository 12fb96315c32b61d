"""The adapted image-quality version through serving: in shadow, scored on real frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sonobridge.inference.modules.common import MODELS_DIR
from sonobridge.inference.runtime.registry import ModelRegistry, packaged_models
from sonobridge.lab import adapt
from sonobridge.lab.faults import InjectedFault

REALUS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "realus-dev"
CARD = MODELS_DIR / adapt.NAME / adapt.VERSION / "card.json"


def test_the_adapted_version_is_in_shadow_and_not_the_default():
    card = json.loads(CARD.read_text())
    assert card["registration"]["stage"] == "shadow"
    assert card["validation"]["validated_device_models"] == []
    assert card["size_bytes"] < 1_000_000
    assert ModelRegistry(packaged_models()).card(adapt.NAME).version == adapt.BASE_VERSION


def test_the_card_gives_cv_figures_per_device_model_and_organ():
    figures = json.loads(CARD.read_text())["cross_validation"]["figures"]
    assert set(figures) == {"all", "per_device_model", "per_organ"}
    assert set(figures["all"]["catch_rate_per_fault"]) == {f.value for f in InjectedFault}


def test_group_folds_never_split_a_group():
    frames = [
        adapt.RealFrame(f"f{i}", None, f"g{i % 7}", "lung", "unknown")  # type: ignore[arg-type]
        for i in range(30)
    ]
    folds = adapt.group_folds(frames, 5)
    by_group: dict[str, set[int]] = {}
    for f, k in zip(frames, folds, strict=True):
        by_group.setdefault(f.group, set()).add(k)
    assert all(len(ks) == 1 for ks in by_group.values())
    assert len(set(folds)) == 5


def test_threshold_catches_the_worst_fault_best_within_the_rescan_budget():
    faults = [None] * 10 + [f for f in InjectedFault for _ in range(10)]
    clean = np.linspace(0.25, 0.99, 10)
    faulty = np.linspace(0.0, 0.19, 60)
    t = adapt.choose_threshold(np.concatenate([clean, faulty]), faults)
    assert (faulty < t).all() and not (clean < t).any()
    # With one fault overlapping the clean frames, spending the 10% budget catches more of it.
    faulty[-10:] = np.linspace(0.2, 0.3, 10)
    t = adapt.choose_threshold(np.concatenate([clean, faulty]), faults)
    assert 0 < (clean < t).mean() <= adapt.FALSE_RESCAN_BUDGET
    assert (faulty < t).all()


def test_benign_variants_mirror_and_move_only_lit_pixels():
    frame = np.zeros((8, 8), dtype=np.uint8)
    frame[2:6, 1:4] = 100
    even, odd = adapt.benign_variant(frame, 2), adapt.benign_variant(frame, 3)
    assert (even[frame == 0] == 0).all() and (odd[:, ::-1][frame == 0] == 0).all()
    assert abs(int(even[3, 2]) - 100) <= round(255 * adapt.BENIGN_GAIN_DB / 55) + 1
    assert odd[3, 7 - 2] > 0 and odd[3, 2] == 0


@pytest.mark.skipif(not (REALUS / "manifest.csv").exists(), reason="realus-dev is not here")
def test_registered_version_through_serving_catches_injected_faults():
    frames = adapt.read_frames(REALUS)
    # One frame per group keeps this under a minute on a shared machine.
    firsts = list({f.group: f for f in frames}.values())
    samples = adapt.evaluation_samples(firsts)
    flags = adapt.serving_flags(MODELS_DIR.parent, adapt.VERSION, samples)
    figures = adapt.figures(samples, flags)["all"]
    # In-sample clean frames (they trained it) but fault seeds it never saw; the card's CV
    # figures are the honest ones. Motion blur on unseen seeds is the weakest (0.64 at 1.1.0).
    assert figures["false_rescan_rate"] <= 0.15
    assert all(rate >= 0.6 for rate in figures["catch_rate_per_fault"].values())


@pytest.mark.xfail(
    strict=True,
    reason="issue 16 target not met yet: 10-fold group-wise CV of 1.2.0 (physics features, "
    "threshold from inner folds) gives 7.0% false rescans but catches motion blur 0.47, partial "
    "lost contact 0.70, low gain 0.70, wrong depth 0.74; 1.1.0 gave 37% at >= 0.79",
)
def test_cross_validated_figures_meet_the_issue_targets():
    figures = json.loads(CARD.read_text())["cross_validation"]["figures"]["all"]
    assert figures["false_rescan_rate"] <= 0.15
    assert all(rate >= 0.8 for rate in figures["catch_rate_per_fault"].values())
