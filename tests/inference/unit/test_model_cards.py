"""Reference model cards: complete, hash-true, small, and their held-out metrics reproduce."""

import asyncio
import hashlib
import json

import numpy as np
import pytest

from sonobridge.inference.handlers.quality import assess_exam_probe_health, check_quality_frames
from sonobridge.inference.runtime.registry import PACKAGED_MODELS_ROOT
from sonobridge.lab.evaluation import binary_metrics, multiclass_metrics
from sonobridge.lab.training.datasets import build_set

MODELS = ["image-quality", "probe-health"]
TOLERANCE = 0.01


def _card(name):
    return json.loads((PACKAGED_MODELS_ROOT / "models" / name / "1.0.0" / "card.json").read_text())


@pytest.mark.parametrize("name", MODELS)
def test_card_is_complete_and_matches_its_model_file(name):
    card = _card(name)
    data = (PACKAGED_MODELS_ROOT / "models" / name / "1.0.0" / "model.onnx").read_bytes()
    assert card["sha256"] == hashlib.sha256(data).hexdigest()
    assert len(data) < 2 * 1024 * 1024
    assert card["disclaimer"] == "reference model, not for clinical use"
    for field in (
        "task",
        "exam_types",
        "input",
        "labels",
        "thresholds",
        "calibration",
        "training_data",
        "held_out",
        "intended_use",
    ):
        assert card[field], field
    assert {"ece_before", "ece_after"} <= set(card["calibration"])


async def _serve_in_chunks(fn, frames, registry, chunk=8):
    # Many concurrent small requests, so the numbers come through the micro-batcher.
    parts = [frames[i : i + chunk] for i in range(0, len(frames), chunk)]
    return await asyncio.gather(*(fn(p, registry) for p in parts))


@pytest.mark.slow
def test_image_quality_held_out_metrics_reproduce_through_serving(loop, registry):
    card = _card("image-quality")
    held = build_set(card["held_out"]["recipe"])
    checks = loop.run_until_complete(_serve_in_chunks(check_quality_frames, held.frames, registry))
    probs = np.array(
        [[f.probabilities[k] for k in card["labels"]] for c in checks for f in c.frames]
    )
    got = multiclass_metrics(probs, held.labels, card["labels"])
    want = card["held_out"]["metrics"]
    for key in ("accuracy", "macro_auc", "ece"):
        assert got[key] == pytest.approx(want[key], abs=TOLERANCE), key
    verdict_ok = np.array([f.acceptable for c in checks for f in c.frames])
    rescan = card["held_out"]["rescan_vs_acceptable"]
    assert float((verdict_ok == (held.labels == 0)).mean()) == pytest.approx(
        rescan["accuracy"], abs=TOLERANCE
    )


@pytest.mark.slow
def test_probe_health_held_out_metrics_reproduce_through_serving(loop, registry):
    card = _card("probe-health")
    held = build_set(card["held_out"]["recipe"])
    results = loop.run_until_complete(
        _serve_in_chunks(assess_exam_probe_health, held.frames, registry)
    )
    scores = np.concatenate([r[1] for r in results])
    got = binary_metrics(scores, held.labels, card["thresholds"]["frame"])
    want = card["held_out"]["metrics"]
    for key in ("accuracy", "auc", "ece"):
        assert got[key] == pytest.approx(want[key], abs=TOLERANCE), key
