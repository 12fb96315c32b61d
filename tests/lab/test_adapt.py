"""The adapted image-quality version through serving: in shadow, scored on real frames."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from sonobridge.common.problems import InvalidInput
from sonobridge.inference.imaging.preprocess import to_tensor
from sonobridge.inference.modules.common import MODELS_DIR
from sonobridge.inference.runtime.registry import ModelRegistry, packaged_models
from sonobridge.inference.runtime.server import ModelServer
from sonobridge.lab import adapt, hc18
from sonobridge.lab.fault_detectors import (
    BLOCKS,
    choose_thresholds,
    detector_layers,
    fit_detector,
    served_acceptable,
)
from sonobridge.lab.faults import InjectedFault
from sonobridge.lab.training.datasets import QUALITY_CLASSES
from sonobridge.lab.training.graphs import MlpHead, classifier_model, feature_model

REALUS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "realus-dev"
CARD = MODELS_DIR / adapt.NAME / adapt.VERSION / "card.json"


def test_the_adapted_version_is_in_shadow_and_not_the_default():
    card = json.loads(CARD.read_text())
    assert card["registration"]["stage"] == "shadow"
    assert card["validation"]["validated_device_models"] == []
    assert card["size_bytes"] < 1_000_000
    assert ModelRegistry(packaged_models()).card(adapt.NAME).version == adapt.BASE_VERSION


def test_each_version_is_fed_at_the_input_size_its_own_card_gives():
    # 1.4.0 reads speckle at 256x256; the versions before it keep their 128x128 input.
    server = ModelServer(ModelRegistry(packaged_models()))
    frame = np.random.default_rng(3).integers(0, 255, (300, 420), dtype=np.uint8)
    try:
        server.load_and_pin([(adapt.NAME, adapt.BASE_VERSION)])
        sides = {}
        for version in ("1.0.0", "1.1.0", "1.2.0", "1.3.0", adapt.VERSION):
            model = server.load(adapt.NAME, version)
            sides[version] = (model.input_spec.height, model.input_spec.width)
            out = server.infer(adapt.NAME, to_tensor(frame, model.input_spec), version)
            assert out["probabilities"].shape == (1, len(QUALITY_CLASSES))
        small = to_tensor(frame, server.get(adapt.NAME, adapt.BASE_VERSION).input_spec)
        with pytest.raises(InvalidInput):
            server.infer(adapt.NAME, small, adapt.VERSION)
    finally:
        server.close()
    assert sides == {
        **{v: (128, 128) for v in ("1.0.0", "1.1.0", "1.2.0", "1.3.0")},
        adapt.VERSION: (256, 256),
    }


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


def test_a_detector_is_switched_on_only_where_it_catches_what_the_head_misses():
    faults = [None] * 10 + [f for f in InjectedFault for _ in range(10)]
    blur = np.array([f == InjectedFault.MOTION_BLUR for f in faults])
    # The head scores blur like clean frames; the blur detector alone separates it.
    p_ok = np.where(np.array([f is None for f in faults]) | blur, 0.9, 0.05)
    q_blur = np.where(blur, 0.02, 0.8)
    q_contact = np.full(len(faults), 0.5)
    t, (tau_blur, tau_contact) = choose_thresholds(p_ok, np.stack([q_blur, q_contact], 1), faults)
    assert 0.05 < t <= 0.9 and 0.02 < tau_blur <= 0.8 and tau_contact == 0.0


@pytest.mark.skipif(not (hc18.DEFAULT_ROOT / "hc18.csv").exists(), reason="HC18 is not here")
def test_extra_clean_frames_are_hc18_subjects_the_labelled_frames_lack():
    labelled = [adapt.RealFrame("x", None, "hc18:026", "other", "v")]  # type: ignore[arg-type]
    extra = adapt.read_extra_frames(hc18.DEFAULT_ROOT, labelled)
    groups = [f.group for f in extra]
    assert len(groups) == len(set(groups)) == adapt.EXTRA_SUBJECTS
    assert "hc18:026" not in groups and all(f.gray.ndim == 2 for f in extra)


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


@pytest.mark.skipif(not (REALUS / "manifest.csv").exists(), reason="realus-dev is not here")
def test_one_fold_of_the_card_is_refitted_and_scored_through_serving_to_the_same_counts():
    # The card's CV figures are recomputed, not trusted: one fold (the last; each is about a
    # tenth of the frames) is refitted on the other folds' frames only, its threshold chosen on
    # their inner folds, and its held-out groups scored through serving's validation report.
    cv = json.loads(CARD.read_text())["cross_validation"]
    frames = adapt.read_frames(REALUS)
    record = cv["folds"][-1]
    keep, samples = adapt.fold_test(frames, cv["n_folds"], record["fold"])
    extra = adapt.read_extra_frames(hc18.DEFAULT_ROOT, frames)
    real = adapt.SampleFeatures.of(frames, cv["seeds_per_fault"], keep, extra)
    with tempfile.TemporaryDirectory() as tmp:
        refitted, flags = adapt.score_fold(Path(tmp), frames, real, keep, samples, record["fold"])
    assert refitted == record
    counts = adapt.flag_counts(samples, flags)
    summed = {key: sum(r[key] for r in cv["folds"]) for key in counts}
    overall = cv["figures"]["all"]
    assert summed["clean"] == round(overall["false_rescan_rate"] * overall["n_clean"])


def _meets_issue_targets(figures: dict) -> bool:
    return figures["false_rescan_rate"] <= 0.15 and all(
        rate >= 0.8 for rate in figures["catch_rate_per_fault"].values()
    )


def test_cross_validated_figures_meet_the_issue_targets():
    # The card's figures are the sum of its folds, one of which the refit above recomputes
    # through serving on every CI run; the full form below recomputes all ten.
    cv = json.loads(CARD.read_text())["cross_validation"]
    figures = cv["figures"]["all"]
    assert _meets_issue_targets(figures)
    caught = {f.value: sum(r[f.value] for r in cv["folds"]) for f in InjectedFault}
    assert caught == {
        k: round(v * figures["n_clean"]) for k, v in figures["catch_rate_per_fault"].items()
    }


@pytest.mark.skipif(
    not os.environ.get("SONOBRIDGE_FULL_CARD") or not (REALUS / "manifest.csv").exists(),
    reason="every fold's fit and serving pass take about 10 minutes; SONOBRIDGE_FULL_CARD=1 "
    "runs them",
)
def test_every_fold_refitted_through_serving_meets_the_issue_targets():
    cv = json.loads(CARD.read_text())["cross_validation"]
    frames = adapt.read_frames(REALUS)
    extra = adapt.read_extra_frames(hc18.DEFAULT_ROOT, frames)
    real = adapt.SampleFeatures.of(frames, cv["seeds_per_fault"], extra_frames=extra)
    samples, flags, records = adapt.cross_validate(frames, real, cv["n_folds"])
    assert records == cv["folds"]
    figures = adapt.figures(samples, flags)
    assert figures == cv["figures"]
    assert _meets_issue_targets(figures["all"])


def test_the_head_tells_faults_apart_and_the_graph_sums_them_into_served_labels():
    session = adapt._session(feature_model(adapt.FEATURES).SerializeToString())
    side = adapt.SPEC.height
    image = np.random.default_rng(0).random((1, 1, side, side), dtype=np.float32)
    n_feats = session.run(["features"], {"image": image})[0].shape[1]
    rng = np.random.default_rng(1)
    k = len(adapt.HEAD_CLASSES)
    head = MlpHead(
        np.zeros(n_feats),
        np.ones(n_feats),
        rng.normal(size=(n_feats, 4)),
        np.zeros(4),
        rng.normal(size=(4, k)),
        np.zeros(k),
    )
    model = classifier_model(
        adapt.FEATURES, head, {"temperature": 1.0}, "softmax", merge=adapt.MERGE
    )
    served = adapt._session(model.SerializeToString()).run(["probabilities"], {"image": image})[0]
    fine = np.exp(head.logits(session.run(["features"], {"image": image})[0]))
    fine /= fine.sum()
    lost = [
        adapt.HEAD_CLASSES.index(f.value)
        for f in InjectedFault
        if f.quality_label == "lost_contact"
    ]
    assert served.shape == (1, len(QUALITY_CLASSES))
    assert np.isclose(
        served[0, QUALITY_CLASSES.index("lost_contact")], fine[0, lost].sum(), atol=1e-5
    )
    assert np.isclose(served[0, 0], fine[0, 0], atol=1e-5)


def test_detector_layers_lower_acceptable_exactly_when_a_detector_fires():
    session = adapt._session(feature_model(adapt.FEATURES).SerializeToString())
    rng = np.random.default_rng(5)
    side = adapt.SPEC.height
    images = rng.random((6, 1, side, side), dtype=np.float32)
    images[3:] = images[3:].round(1)
    feats = session.run(["features"], {"image": images})[0]
    n_feats, k = feats.shape[1], len(adapt.HEAD_CLASSES)
    head = MlpHead(
        feats.mean(0),
        feats.std(0) + 1e-3,
        rng.normal(size=(n_feats, 4)),
        np.zeros(4),
        0.1 * rng.normal(size=(4, k)),
        # Acceptable is likely, so only the detector can send a frame to rescan.
        np.eye(k)[0] * 3,
    )
    faults = [None, None, None, InjectedFault.MOTION_BLUR, InjectedFault.LOST_CONTACT_PARTIAL]
    dets = [fit_detector(np.repeat(feats[:5], 2, 0), faults * 2, f) for f in BLOCKS]
    q = np.stack([d.clean_probability(feats) for d in dets], 1)
    p_ok = adapt.acceptable_probability(head, feats)
    threshold, taus = 0.3, (float(np.median(q[:, 0])), 0.0)
    served, base = (
        adapt._session(
            classifier_model(
                adapt.FEATURES,
                head,
                {"temperature": 1.0},
                "softmax",
                merge=adapt.MERGE,
                post=post,
            ).SerializeToString()
        ).run(["probabilities"], {"image": images})[0]
        for post in (detector_layers(dets, taus, threshold), None)
    )
    assert np.allclose(served[:, 0], served_acceptable(p_ok, q, threshold, taus), atol=1e-5)
    fired = q[:, 0] < taus[0]
    assert fired.any() and not fired.all()
    assert ((served[:, 0] < threshold) == ((p_ok < threshold) | fired)).all()
    # The lowered share goes to blur's own class, so the reason names it; the rest is untouched.
    blur = QUALITY_CLASSES.index("motion_blur")
    moved = np.zeros_like(base)
    moved[:, 0], moved[:, blur] = served[:, 0] - base[:, 0], base[:, 0] - served[:, 0]
    assert np.allclose(served, base + moved, atol=1e-5)
    assert (moved[fired, blur] > 0).all()
