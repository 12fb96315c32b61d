"""Probe-health thresholds recalibrated on real frames: in shadow, fewer false alarms per exam."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sonobridge.inference.modules.common import MODELS_DIR
from sonobridge.inference.runtime.registry import ModelRegistry, packaged_models
from sonobridge.lab import probe_recalibration as recal
from sonobridge.lab.adapt import read_frames

REALUS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "realus-dev"
CARD = MODELS_DIR / recal.NAME / recal.VERSION / "card.json"


def test_the_recalibrated_version_is_in_shadow_and_not_the_default():
    card = json.loads(CARD.read_text())
    assert card["registration"]["stage"] == "shadow"
    assert card["validation"]["validated_device_models"] == []
    assert ModelRegistry(packaged_models()).card(recal.NAME).version == recal.BASE_VERSION


def test_the_card_reports_false_alarms_per_clean_real_exam_below_the_base_version():
    real = json.loads(CARD.read_text())["real_frames"]
    cv = real["cross_validation"]["false_alarm_rate_per_clean_exam"]
    before = real[f"at_{recal.BASE_VERSION}_threshold_0.5"]["false_alarm_rate_per_clean_exam"]
    assert cv < before
    assert real["cross_validation"]["dead_elements_caught_per_exam"] >= 0.8


def test_threshold_passes_all_but_the_allowed_share_of_clean_exams():
    scores = np.linspace(0.0, 0.95, 40)
    t = recal.choose_threshold(scores)
    assert (scores >= t).sum() == int(recal.MAX_TRAINING_FALSE_ALARMS * 40)


@pytest.mark.skipif(not (REALUS / "manifest.csv").exists(), reason="realus-dev is not here")
def test_card_threshold_recomputed_on_real_exams():
    card = json.loads(CARD.read_text())
    frames = read_frames(REALUS)
    model = (MODELS_DIR / recal.NAME / recal.VERSION / "model.onnx").read_bytes()
    scores = recal.score_exams(frames, model)
    t = float(card["thresholds"]["exam"])
    # In-sample (the threshold saw these exams): at most the allowed share of false alarms.
    assert (scores.clean >= t).mean() <= recal.MAX_TRAINING_FALSE_ALARMS
    assert (scores.faulty >= t).mean() >= 0.8
