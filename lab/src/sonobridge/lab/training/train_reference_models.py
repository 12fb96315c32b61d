"""Train, calibrate, evaluate and export the reference models with their cards (fixed seeds)."""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from sonobridge.inference.imaging.preprocess import InputSpec, to_tensor
from sonobridge.inference.modules.common import MODELS_DIR
from sonobridge.lab.evaluation import binary_metrics, multiclass_metrics
from sonobridge.lab.synthetic import EXAM_TYPES, GENERATOR_VERSION
from sonobridge.lab.training.datasets import (
    QUALITY_CLASSES,
    LabelledFrames,
    probe_health_set,
    quality_set,
)
from sonobridge.lab.training.graphs import (
    OPSET,
    FeatureConfig,
    classifier_model,
    feature_model,
)
from sonobridge.lab.training.mlp import fit_platt, fit_temperature, train_head

DISCLAIMER = "reference model, not for clinical use"
TRAIN_COMMAND = (
    "uv run --package sonobridge-lab python -m sonobridge.lab.training.train_reference_models"
)
SEEDS = {"train": 11, "calibration": 12, "held_out": 13, "head": 7}


def _session(model_bytes: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def _run(
    session: ort.InferenceSession, frames: np.ndarray, spec: InputSpec, output: str
) -> np.ndarray:
    out = []
    for start in range(0, len(frames), 64):
        x = to_tensor(frames[start : start + 64], spec)
        out.append(session.run([output], {spec.name: x})[0])
    return np.concatenate(out)


def _input_card(spec: InputSpec) -> dict:
    return {
        "name": spec.name,
        "shape": ["N", 1, spec.height, spec.width],
        "dtype": "float32",
        "preprocessing": {
            "decode": "JPEG/PNG via Pillow; DICOM via pydicom (YBR converted to RGB, palette "
            "LUT applied, MONOCHROME1 inverted)",
            "color": "grayscale uint8 via ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B), rounded",
            "resize": f"whole frame to {spec.width}x{spec.height} with Pillow bilinear "
            "(aspect ratio not kept, no crop)",
            "resample": spec.resample,
            "scale": spec.scale,
            "cine": "frames sampled evenly (FrameSampling.max_frames=8), each scored separately",
        },
    }


def _write(name: str, version: str, model_bytes: bytes, card: dict, out_dir: Path) -> Path:
    target = out_dir / name / version
    target.mkdir(parents=True, exist_ok=True)
    # The validation section (device-model states, promotion thresholds) is kept by hand in
    # the registered card; retraining the weights must not drop it.
    previous = target / "card.json"
    if previous.exists() and "validation" not in card:
        kept = json.loads(previous.read_text()).get("validation")
        if kept is not None:
            card["validation"] = kept
    (target / "model.onnx").write_bytes(model_bytes)
    card["sha256"] = hashlib.sha256(model_bytes).hexdigest()
    card["size_bytes"] = len(model_bytes)
    (target / "card.json").write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    return target


def _split(sets: dict[str, LabelledFrames]) -> dict:
    return {k: v.recipe for k, v in sets.items()}


def train_image_quality(out_dir: Path, scale: float = 1.0) -> dict:
    """Train the image-quality model (acceptable vs rescan with reason) and write it."""
    spec = InputSpec("image", 128, 128)
    cfg = FeatureConfig(size=128, valley_shifts=(1, 2), line_pool=4)
    t0 = time.time()
    sets = {
        "train": quality_set(SEEDS["train"], int(240 * scale)),
        "calibration": quality_set(SEEDS["calibration"], int(60 * scale)),
        "held_out": quality_set(SEEDS["held_out"], int(60 * scale)),
    }
    gen_s = time.time() - t0
    feats_session = _session(feature_model(cfg).SerializeToString())
    feats = {k: _run(feats_session, v.frames, spec, "features") for k, v in sets.items()}
    head = train_head(feats["train"], sets["train"].labels, len(QUALITY_CLASSES), SEEDS["head"])
    t_cal = fit_temperature(head.logits(feats["calibration"]), sets["calibration"].labels)
    model = classifier_model(
        cfg, head, {"temperature": t_cal}, "softmax", doc="SonoBridge image-quality " + DISCLAIMER
    )
    model_bytes = model.SerializeToString()
    session = _session(model_bytes)
    probs = _run(session, sets["held_out"].frames, spec, "probabilities")
    logits = _run(session, sets["held_out"].frames, spec, "logits")
    held = multiclass_metrics(probs, sets["held_out"].labels, QUALITY_CLASSES)
    raw = multiclass_metrics(_softmax(logits), sets["held_out"].labels, QUALITY_CLASSES)
    accept_p = probs[:, 0]
    is_ok = sets["held_out"].labels == 0
    rescan = binary_metrics(1 - accept_p, ~is_ok, 0.5)
    card = {
        "name": "image-quality",
        "version": "1.0.0",
        "task": "Frame quality check: acceptable vs rescan, with the reason "
        "(single-label over fault types)",
        "exam_types": list(EXAM_TYPES),
        "input": _input_card(spec),
        "outputs": {
            "probabilities": "float32 [N, 6], calibrated softmax over labels",
            "logits": "float32 [N, 6], before temperature scaling",
        },
        "labels": QUALITY_CLASSES,
        "thresholds": {
            "rescan_if_acceptable_below": 0.5,
            "reason": "label with the highest probability among the fault labels",
        },
        "calibration": {
            "method": "temperature scaling (NLL grid search on the calibration split)",
            "temperature": t_cal,
            "ece_before": raw["ece"],
            "ece_after": held["ece"],
            "ece_bins": 15,
        },
        "training_data": {
            "description": "Synthetic B-mode frames from the project generator: linear, convex and "
            "phased geometries, six exam types, one fault (or none) per frame, balanced classes.",
            "splits": _split(sets),
            "counts": {k: len(v.labels) for k, v in sets.items()},
            "generation_seconds": round(gen_s, 1),
        },
        "held_out": {
            "recipe": sets["held_out"].recipe,
            "metrics": held,
            "rescan_vs_acceptable": rescan,
            "metrics_uncalibrated": {k: raw[k] for k in ("accuracy", "macro_auc", "ece")},
        },
        "intended_use": "Tell a handheld-ultrasound operator, during the scan, that a frame should "
        "be "
        "re-acquired and why. Trained only on synthetic images; to be validated on real data.",
        "disclaimer": DISCLAIMER,
        "model": {
            "architecture": "fixed ONNX feature layers (intensity grid, texture, gradients, "
            "oriented dark-line filters) + MLP 32 ReLU",
            "opset": OPSET,
            "head_seed": SEEDS["head"],
        },
        "training_command": TRAIN_COMMAND,
    }
    _write("image-quality", "1.0.0", model_bytes, card, out_dir)
    return card


def train_probe_health(out_dir: Path, scale: float = 1.0) -> dict:
    """Train the dead-element detector (per-frame score) and write it."""
    spec = InputSpec("image", 256, 256)
    cfg = FeatureConfig(size=256, valley_shifts=(2, 3), line_pool=8)
    t0 = time.time()
    sets = {
        "train": probe_health_set(SEEDS["train"] + 100, int(800 * scale)),
        "calibration": probe_health_set(SEEDS["calibration"] + 100, int(200 * scale)),
        "held_out": probe_health_set(SEEDS["held_out"] + 100, int(240 * scale)),
    }
    gen_s = time.time() - t0
    feats_session = _session(feature_model(cfg).SerializeToString())
    feats = {k: _run(feats_session, v.frames, spec, "features") for k, v in sets.items()}
    head = train_head(feats["train"], sets["train"].labels, 1, SEEDS["head"], hidden=16)
    a, b = fit_platt(head.logits(feats["calibration"]), sets["calibration"].labels)
    model = classifier_model(
        cfg,
        head,
        {"platt_a": a, "platt_b": b},
        "sigmoid",
        doc="SonoBridge probe-health " + DISCLAIMER,
    )
    model_bytes = model.SerializeToString()
    session = _session(model_bytes)
    prob = _run(session, sets["held_out"].frames, spec, "probabilities")[:, 0]
    logit = _run(session, sets["held_out"].frames, spec, "logits")[:, 0]
    labels = sets["held_out"].labels
    held = binary_metrics(prob, labels, 0.5)
    raw = binary_metrics(1 / (1 + np.exp(-logit)), labels, 0.5)
    card = {
        "name": "probe-health",
        "version": "1.0.0",
        "task": "Dead transducer element detection: per-frame probability of dark scan lines",
        "exam_types": list(EXAM_TYPES),
        "input": _input_card(spec),
        "outputs": {
            "probabilities": "float32 [N, 1], calibrated probability of dead elements",
            "logits": "float32 [N, 1], before Platt scaling",
        },
        "labels": ["dead_elements"],
        "thresholds": {
            "frame": 0.5,
            "exam": 0.5,
            "exam_aggregation": "mean of frame probabilities over the exam's sampled frames; "
            "dead elements persist across frames while speckle does not",
        },
        "calibration": {
            "method": "Platt scaling sigmoid(a*logit+b) fitted on the calibration split",
            "platt_a": a,
            "platt_b": b,
            "ece_before": raw["ece"],
            "ece_after": held["ece"],
            "ece_bins": 15,
        },
        "training_data": {
            "description": "Synthetic B-mode frames, half with 1-3 dead bands of 1-3 scan "
            "lines (residual gain 0-0.2), mixed with low gain, motion blur, wrong depth and "
            "lost contact.",
            "splits": _split(sets),
            "counts": {k: len(v.labels) for k, v in sets.items()},
            "generation_seconds": round(gen_s, 1),
        },
        "held_out": {
            "recipe": sets["held_out"].recipe,
            "metrics": held,
            "metrics_uncalibrated": {k: raw[k] for k in ("accuracy", "auc", "ece")},
        },
        "intended_use": "Flag probes whose frames show dead elements so maintenance can open a "
        "ticket. Trained only on synthetic images; to be validated on real probes.",
        "disclaimer": DISCLAIMER,
        "model": {
            "architecture": "fixed ONNX feature layers (valley filter across the beam, "
            "oriented line integration, intensity and gradient statistics) + MLP 16 ReLU",
            "opset": OPSET,
            "head_seed": SEEDS["head"],
        },
        "training_command": TRAIN_COMMAND,
    }
    _write("probe-health", "1.0.0", model_bytes, card, out_dir)
    return card


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> None:
    """Train both reference models and print their held-out figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=MODELS_DIR)
    parser.add_argument("--scale", type=float, default=0.6, help="grow or shrink the sets")
    parser.add_argument("--only", choices=["image-quality", "probe-health"])
    args = parser.parse_args(argv)
    print(f"generator {GENERATOR_VERSION}, writing to {args.out}")
    for name, fn in (("image-quality", train_image_quality), ("probe-health", train_probe_health)):
        if args.only and args.only != name:
            continue
        t0 = time.time()
        card = fn(args.out, args.scale)
        held = card["held_out"]["metrics"]
        auc = held.get("macro_auc", held.get("auc"))
        print(
            f"{name}: held-out n={held['n']} accuracy={held['accuracy']:.3f} auc={auc:.3f} "
            f"ece {card['calibration']['ece_before']:.3f}->{card['calibration']['ece_after']:.3f} "
            f"size={card['size_bytes']}B in {time.time() - t0:.0f}s"
        )


if __name__ == "__main__":
    main()
