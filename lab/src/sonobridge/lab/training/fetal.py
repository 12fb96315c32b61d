"""Train, calibrate and development-test the fetal-biometry module on HC18 (one command, seeded)."""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sonobridge.inference.imaging.preprocess import InputSpec, to_tensor
from sonobridge.inference.modules import fetal, fetal_evidence
from sonobridge.inference.modules.common import LoadedCard
from sonobridge.inference.modules.terminology import card_codes
from sonobridge.lab import hc18
from sonobridge.lab.training.clinical import DISCLAIMER, MODELS_DIR
from sonobridge.lab.training.clinical_fit import fit_least_absolute, fit_logistic

HEIGHT, WIDTH = 128, 192
# U-Net widths per level on the half-resolution grid (64x96 down to 4x6).
WIDTHS = (8, 16, 32, 64, 96)
EPOCHS = 30
BATCH = 8
LEARNING_RATE = 3e-3
MAX_TURN_DEGREES = 15.0
SCALES = (0.85, 1.15)
# One thread: on the shared 2-core machine two threads ran each step over ten times slower.
THREADS = 1
# Calibration pixels drawn for the softmax temperature (all of them would add nothing).
TEMPERATURE_PIXELS = 200_000
# The HC calibration line needs a few hundred heads, not every training image.
CALIBRATION_LINE_IMAGES = 240
SEEDS = {"network": 83, "temperature_pixels": 82}
TEST_SUBSET = 40
# One half: the U-Net's softmax is temperature-calibrated, so its even odds mark the outline.
SEGMENT_THRESHOLD = 0.5
# The U-Net's outline already lies on the expert's; moving it to the brightest bone along its
# normals now hurts (calibration split, HC line fitted there: MAE 3.45 mm with, 2.42 without).
SKULL_RIDGE = False
_RIDGE_OFF = "Off in this version (parameters.skull_ridge): it hurt on the calibration split."
GOAL_MAE_MM = 2.5
# lab/src/sonobridge/lab/training/fetal.py: five folders below the repository root.
REPO_ROOT = Path(__file__).resolve().parents[5]
CACHE_DIR = REPO_ROOT / ".cache" / "hc18"
FIT_COMMAND = (
    "uv run --package sonobridge-lab "
    "--extra train python -m sonobridge.lab.training.fetal [--data ../shared/datasets/hc18]"
)
CONFIDENCE_FEATURES = (
    "log(raw HC mm)",
    "RMS ellipse-fit residual (normalised radius)",
    "mean P(head) in the region",
    "|region area / ellipse area - 1|",
    "cut-off share: max(ellipse perimeter outside the image, region outline on its border)",
    "minor / major axis",
    "share of normals whose skull ridge lies on the refined ellipse",
    "|ridge HC / network-outline HC - 1|",
)


def _prepared(images: list[hc18.Hc18Image], root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return network-size inputs and head labels, cached (derived arrays, never committed)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{HEIGHT}x{WIDTH}|{[im.filename for im in images]}".encode()).hexdigest()[
        :16
    ]
    path = CACHE_DIR / f"prepared-{key}.npz"
    if path.exists():
        cached = np.load(path)
        return cached["x"], cached["y"]
    spec = InputSpec("image", HEIGHT, WIDTH)
    xs, ys = [], []
    for im in images:
        xs.append(to_tensor(im.pixels(root), spec)[0, 0])
        m = Image.fromarray(im.mask(root).astype(np.uint8) * 255)
        ys.append(np.asarray(m.resize((WIDTH, HEIGHT), Image.Resampling.BOX)) >= 128)
    x, y = np.stack(xs).astype(np.float32), np.stack(ys)
    np.savez_compressed(path, x=x, y=y)
    return x, y


def _network(parts, root: Path, rebuild: bool) -> tuple[bytes, dict[str, Any]]:
    """Return the segmenter's ONNX bytes and its fit record, trained or reused from the cache."""
    from sonobridge.lab.training.fetal_graphs import UnetWeights, segmentation_model

    here = Path(__file__).parent
    key = hashlib.sha256(
        json.dumps(
            [HEIGHT, WIDTH, WIDTHS, EPOCHS, BATCH, LEARNING_RATE, MAX_TURN_DEGREES, SCALES, SEEDS]
            + [im.filename for im in parts["train"] + parts["calibration"]]
            + [(here / f).read_text() for f in ("fetal_graphs.py", "fetal_unet.py")]
        ).encode()
    ).hexdigest()[:16]
    record_path = CACHE_DIR / f"network-{key}.json"
    weights_path = CACHE_DIR / f"network-{key}.npz"
    if record_path.exists() and weights_path.exists() and not rebuild:
        # Iterating on the measurement stage: the network of an identical recipe is reused.
        net = json.loads(record_path.read_text())
        weights = UnetWeights.from_arrays(dict(np.load(weights_path)))
    else:
        from sonobridge.lab.training import fetal_unet
        from sonobridge.lab.training.mlp import fit_temperature

        t0 = time.time()
        tx, ty = _prepared(parts["train"], root)
        cx, cy = _prepared(parts["calibration"], root)
        model = fetal_unet.train(
            tx,
            ty,
            widths=WIDTHS,
            epochs=EPOCHS,
            batch=BATCH,
            seed=SEEDS["network"],
            lr=LEARNING_RATE,
            max_turn=MAX_TURN_DEGREES,
            scales=SCALES,
            threads=THREADS,
        )
        fit_seconds = time.time() - t0
        weights = model.export_weights()
        logits = fetal_unet.logits_of(model, cx).transpose(0, 2, 3, 1).reshape(-1, 2)
        labels = cy.ravel().astype(np.int64)
        rng = np.random.default_rng(SEEDS["temperature_pixels"])
        pick = rng.choice(len(labels), size=min(TEMPERATURE_PIXELS, len(labels)), replace=False)
        net = {
            "temperature": fit_temperature(logits[pick], labels[pick]),
            "parameters": weights.parameter_count(),
            "pixel_accuracy_calibration": float((logits.argmax(1) == labels).mean()),
            "seconds": round(fit_seconds, 1),
        }
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        np.savez(weights_path, **weights.arrays())
        record_path.write_text(json.dumps(net))
    onnx_bytes = segmentation_model(
        HEIGHT, WIDTH, weights, net["temperature"], doc=fetal.NAME
    ).SerializeToString()
    return onnx_bytes, net


def _views(module: fetal.FetalBiometryModule, images, root: Path):
    out = []
    for im in images:
        v = module.measure(im.frame(root))
        if v is not None:
            out.append((im, v))
    return out


def fit(root: Path, rebuild: bool = False) -> dict[str, Any]:
    """Fit the network, the HC calibration and the confidence; write the card and weights."""
    t0 = time.time()
    parts = hc18.splits(hc18.read_index(root))
    onnx_bytes, net = _network(parts, root, rebuild)
    temperature = net["temperature"]
    print(f"network: {net}")
    params: dict[str, Any] = {
        "segment_threshold": SEGMENT_THRESHOLD,
        "skull_ridge": SKULL_RIDGE,
        "hc_calibration": [1.0, 0.0],
        "confidence_logistic": [0.0] * (1 + len(CONFIDENCE_FEATURES)),
    }
    card = fetal_card(params, temperature)
    module = fetal.FetalBiometryModule(LoadedCard(card, onnx_bytes))
    train = _views(module, hc18.subset(parts["train"], CALIBRATION_LINE_IMAGES), root)
    raw = np.array([v.raw_hc_mm for _, v in train])
    truth = np.array([im.hc_mm for im, _ in train])
    clean = np.array([v.cut_off <= 0.02 for _, v in train])
    params["hc_calibration"] = list(fit_least_absolute(raw[clean], truth[clean]))
    # Plausibility bounds: what the training heads span, a little widened.
    ratio = np.array([v.ellipse.semi_minor / v.ellipse.semi_major for _, v in train])
    residual = np.array([v.residual for _, v in train])
    mean_p = np.array([v.mean_p for _, v in train])
    card["thresholds"].update(
        poor_fit_residual_above=round(float(np.quantile(residual, 0.95)), 4),
        plausible_minor_major_ratio=[round(float(np.quantile(ratio, 0.005)) - 0.05, 3), 1.0],
        plausible_mean_probability_at_least=round(float(np.quantile(mean_p, 0.005)) - 0.05, 3),
    )
    module = fetal.FetalBiometryModule(LoadedCard(card, onnx_bytes))
    calib = _views(module, parts["calibration"], root)
    feats = np.array([v.features() for _, v in calib])
    within = np.array([abs(module.hc_mm(v) - im.hc_mm) <= hc18.WITHIN_MM for im, v in calib])
    params["confidence_logistic"] = [float(w) for w in fit_logistic(feats, within, l2=1.0)]
    card["parameters"] = params
    card["training_data"]["images"] = {k: len(v) for k, v in parts.items()}
    card["training_data"]["subjects"] = {k: len({im.subject for im in v}) for k, v in parts.items()}
    card["training_data"]["network_parameters"] = net["parameters"]
    card["training_data"]["network_fit_seconds"] = net["seconds"]
    card["training_data"]["pixel_accuracy_calibration"] = round(
        net["pixel_accuracy_calibration"], 4
    )
    card["training_data"]["measured"] = {"train": len(train), "calibration": len(calib)}
    module = fetal.FetalBiometryModule(LoadedCard(card, onnx_bytes))
    dev = parts["development"]
    rows = hc18.measure(module, dev, root)
    card["held_out"] = {
        "split": "development: subject-grouped, never trained or calibrated on",
        **hc18.summarise(rows),
    }
    mae = card["held_out"]["hc_mean_abs_diff_mm"]
    card["against_goal"] = {
        "goal_hc_mean_abs_diff_mm_at_most": GOAL_MAE_MM,
        "reached_hc_mean_abs_diff_mm": mae,
        "met": bool(mae <= GOAL_MAE_MM),
        "paper_hc_mean_abs_diff_mm": hc18.PAPER["mean_abs_diff_mm"],
        "note": "The goal is not met by this reference model on the development split; "
        "measurements it is confident about are closer "
        "(hc_mean_abs_diff_mm_not_low_confidence)."
        if mae > GOAL_MAE_MM
        else "Goal met on the development split; the product owner's held-back subjects decide.",
    }
    chosen = {im.filename for im in hc18.subset(dev, TEST_SUBSET)}
    card["development_test_subset"] = {
        "how": "hc18.subset(development split, n): evenly spaced over the split in CSV order",
        **hc18.summarise([r for r in rows if r["filename"] in chosen]),
    }
    card["training_data"]["fit_seconds"] = round(time.time() - t0, 1)
    card["training_data"]["fit_seconds_note"] = (
        "network_fit_seconds: the U-Net's training alone from scratch; fit_seconds: this "
        "run (the network is reused from the git-ignored .cache/hc18 when its recipe is "
        "unchanged; --rebuild retrains it)"
    )
    card["training_data"]["fit_machine"] = f"{platform.machine()}, 2 shared CPU cores"
    folder = MODELS_DIR / fetal.NAME / fetal.VERSION
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(onnx_bytes)
    card["sha256"] = hashlib.sha256(onnx_bytes).hexdigest()
    (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def fetal_card(params: dict[str, Any], temperature: float) -> dict[str, Any]:
    """Return the fetal-biometry card (development figures are added after evaluation)."""
    return {
        "name": fetal.NAME,
        "version": fetal.VERSION,
        "task": "Fetal head biometry on a trans-thalamic view: head circumference, biparietal "
        "and occipito-frontal diameters (mm) and gestational age by HC, compared with the "
        "app's dates when sent",
        "kind": "segmentation network (compact U-Net, ONNX) of the fetal head, least-squares "
        "ellipse fit, fitted calibration and confidence",
        "exam_types": sorted(fetal.EXAM_TYPES),
        "input": {
            "name": "image",
            "shape": ["N", 1, HEIGHT, WIDTH],
            "dtype": "float32",
            "preprocessing": {
                "resize": f"whole frame to {HEIGHT}x{WIDTH} (rows x cols) with Pillow bilinear",
                "resample": "bilinear",
                "scale": 1.0 / 255.0,
                "probabilities": "resized back to frame size (bilinear) before thresholding",
                "spacing": "DICOM PixelSpacing, else the app's pixel_spacing_mm; none: "
                "not measurable",
            },
        },
        "outputs": {"probabilities": f"float32 [N, 2, {HEIGHT}, {WIDTH}] softmax"},
        "network": {
            "architecture": f"U-Net on the half-resolution grid: 2x2 average pool, levels of "
            f"widths {list(WIDTHS)} (two 3x3 convolutions each, batch norm folded in, ReLU), "
            "2x2 max-pool down, 2x2 transposed convolutions up with skip concatenation, 1x1 "
            "head, bilinear back to the input grid, tempered softmax",
            "training": f"PyTorch on CPU (threads: {THREADS}, deterministic algorithms), seed "
            f"{SEEDS['network']}, {EPOCHS} epochs of AdamW (one-cycle, peak {LEARNING_RATE}), "
            f"batches of {BATCH}, cross-entropy + soft Dice on the expert's filled ellipse; "
            f"augmented by flips, turns within +-{MAX_TURN_DEGREES:g} degrees, scales "
            f"{list(SCALES)}, shifts within 5%, gain and gamma jitter",
            "train_split_only": "trained on the train split; temperature and all later stages "
            "fitted on the calibration split",
        },
        "measurement": {
            "region": f"P(head) resized to at most {fetal.WORK_MAX_SIDE} cells a side, "
            f">= segment_threshold, opened by {fetal.OPENING_CELLS} cells (cuts leaks into the "
            "uterine wall), largest connected region, holes filled",
            "ellipse": "direct least-squares ellipse fit (Fitzgibbon; Halir-Flusser) to the "
            "region's outline in mm, two rounds dropping outline points far off the ellipse",
            "skull": f"{fetal.RIDGE_NORMALS} normals of that ellipse, searched within "
            f"{list(fetal.RIDGE_PASSES)} of its mean radius (two passes) on the full-resolution "
            f"frame smoothed {fetal.RIDGE_SMOOTH_MM} mm: the brightest point (bone), then the "
            "half-maximum point of the outward slope (the skull's outer border, which the "
            "expert's ellipse follows); the ellipse is refitted to those points. "
            + ("On." if SKULL_RIDGE else _RIDGE_OFF),
            "hc": "Ramanujan's perimeter of the ellipse, least-absolute-error linear map to "
            "the expert's HC fitted on train images whose head is not cut off",
            "bpd_ofd": "minor and major axis of the ellipse scaled by the same calibration "
            "(outer-to-outer of the fitted outline)",
            "gestational_age": "Hadlock FP, Deter RL, Harrist RB, Park SK (1984) Radiology "
            "152:497-501: GA (weeks) = 8.96 + 0.540 HC + 0.0003 HC^3, HC in cm; stated "
            "variability +-2 SD: 1.3 wk (<18 wk), 1.6 (18-24), 2.3 (24-30), 2.7 (30-36), "
            "3.4 (>36); derived over 14-42 weeks",
            "dates": "when the app sends a gestational age (the gestational_age_weeks key of "
            "its upload, carried on InstanceRef.app_gestational_age_weeks into "
            "ModuleFrame.app_gestational_age_weeks), a difference beyond the formula's +-2 SD "
            "marks the GA finding abnormal (disagrees_with_app)",
            "frames": f"up to {fetal.MAX_FRAMES} frames measured; the most confident "
            "measurement without concerns is reported",
        },
        "labels": list(fetal.CLASSES),
        "codes": card_codes(fetal.CODES, sorted(fetal.EXAM_TYPES)),
        "thresholds": {
            "segment_threshold": SEGMENT_THRESHOLD,
            "low_confidence_below": 0.5,
            "cut_off_perimeter_share_above": 0.02,
            "plausible_hc_mm": [40.0, 400.0],
            "poor_fit_residual_above": 1.0,
            "plausible_minor_major_ratio": [0.0, 1.0],
            "plausible_mean_probability_at_least": 0.0,
            "cut_off_means": "share of the ellipse perimeter outside the frame or within "
            f"{fetal.CUT_OFF_MARGIN} x its mean radius of the frame's edge, or of the head "
            "region's outline running along the frame border, whichever is larger",
            "low_confidence_also_when": "head cut off by the image edge, poor ellipse fit "
            "(residual above the train 95th percentile), or the view is not a fetal head "
            "(axis ratio, HC or mean P(head) outside what training heads span)",
        },
        "evidence": fetal_evidence.describe(),
        "parameters": params,
        "calibration": {
            "pixels": f"temperature scaling on {TEMPERATURE_PIXELS} calibration-split pixels "
            f"(seed {SEEDS['temperature_pixels']})",
            "temperature": temperature,
            "confidence": "P(|HC - expert HC| <= 3 mm): logistic regression on "
            f"{list(CONFIDENCE_FEATURES)} fitted on the calibration split",
            "ece_bins": hc18.ECE_BINS,
        },
        "training_data": {
            "description": "HC18 challenge training images as held in shared/datasets/hc18 "
            "(799 images from 80% of the challenge's subjects; the product owner keeps the "
            "other 20%); split by subject, seed "
            f"{hc18.SPLIT_SEED}, shares {dict(hc18.SPLIT_SHARES)}. Never committed.",
            "credit": "van den Heuvel TLA, de Bruijn D, de Korte CL, van Ginneken B (2018) "
            "Automated measurement of fetal head circumference using 2D ultrasound images. "
            "PLoS ONE 13(8): e0200412; data doi 10.5281/zenodo.1327317, licence CC BY 4.0",
            "fit_command": FIT_COMMAND,
        },
        "held_out": {},
        "published_reference": {
            "source": "van den Heuvel et al. 2018, their method on the 335-image HC18 test set",
            **hc18.PAPER,
            "note": "Different images: ours is a subject-grouped development split of the "
            "public training set, theirs the challenge test set.",
        },
        "figures_are": "development figures on the subject-grouped development split of the "
        "images in shared/; the product owner measures the same on the 20% of subjects kept "
        "out",
        "intended_use": "Decision support for township pregnancy checks: dating and growth "
        "screening; low-confidence results and dates disagreements go to a county expert.",
        "disclaimer": DISCLAIMER,
        "sha256": None,
    }


def main(argv: list[str] | None = None) -> None:
    """Fit the fetal-biometry module on HC18 and write models/fetal-biometry/<version>/."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=hc18.DEFAULT_ROOT, help="HC18 folder")
    parser.add_argument("--rebuild", action="store_true", help="retrain the network even if cached")
    args = parser.parse_args(argv)
    card = fit(args.data.resolve(), rebuild=args.rebuild)
    print(
        f"{fetal.NAME}: {card['training_data']['fit_seconds']}s development "
        f"{json.dumps(card['held_out'])}"
    )


if __name__ == "__main__":
    main()
