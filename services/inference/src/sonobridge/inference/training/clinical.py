"""Fit, evaluate and export the clinical modules with their cards (fixed seeds, one command)."""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from sonobridge.inference.modules import carotid
from sonobridge.inference.modules.common import LoadedCard
from sonobridge.inference.modules.held_out import Recipe, carotid_metrics, cases
from sonobridge.inference.training.clinical_fit import (
    fit_gaussian_error,
    fit_linear,
    fit_logistic,
)

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DISCLAIMER = "reference model, not for clinical use"
FIT_COMMAND = (
    "uv run --package sonobridge-inference --extra train "
    "python -m sonobridge.inference.training.clinical"
)
CODES_NOTE = (
    "Findings use the local code system urn:sonobridge:finding. No SNOMED CT, RadLex or LOINC "
    "code could be verified offline for these measurements, so none is claimed; map the local "
    "codes after terminology review. Units are UCUM."
)

CAROTID_RECIPES = {
    "train": Recipe(("carotid",), seed=51, count=240, size=384),
    "calibration": Recipe(("carotid",), seed=52, count=120, size=384),
    "held_out": Recipe(("carotid",), seed=53, count=160, size=384),
}


def _write(name: str, version: str, card: dict[str, Any], onnx_bytes: bytes | None) -> Path:
    folder = MODELS_DIR / name / version
    folder.mkdir(parents=True, exist_ok=True)
    if onnx_bytes is not None:
        (folder / "model.onnx").write_bytes(onnx_bytes)
        card["sha256"] = hashlib.sha256(onnx_bytes).hexdigest()
    else:
        card["sha256"] = None
    (folder / "card.json").write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    return folder


def _walls(case_list):
    out = []
    for case in case_list:
        walls = [w for w in (carotid.measure_frame(f) for f in case.frames) if w is not None]
        out.append((case, walls))
    return out


def fit_carotid() -> dict[str, Any]:
    """Fit the IMT calibration, its error model and the plaque call; evaluate held-out."""
    t0 = time.time()
    train = _walls(cases(CAROTID_RECIPES["train"]))
    calib = _walls(cases(CAROTID_RECIPES["calibration"]))
    train_ok = [(c, w) for c, w in train if w]
    raw = np.array([carotid.pool(w, 1.0, 0.0).raw_median_mm for _, w in train_ok])
    truth = np.array([c.anatomy[0]["carotid"]["imt_mm"] for c, _ in train_ok])
    a, b = fit_linear(raw, truth)
    feats, labels = [], []
    for c, w in train_ok:
        ex = carotid.pool(w, a, b)
        imt = a * ex.raw_median_mm + b
        feats.append([ex.max_cal_mm - carotid_thresholds()["plaque_mm"], ex.max_cal_mm - imt])
        labels.append(c.anatomy[0]["carotid"]["plaque"])
    plaque_w = fit_logistic(np.array(feats), np.array(labels))
    calib_ok = [(c, w) for c, w in calib if w]
    res, spread = [], []
    for c, w in calib_ok:
        ex = carotid.pool(w, a, b)
        res.append(a * ex.raw_median_mm + b - c.anatomy[0]["carotid"]["imt_mm"])
        spread.append(ex.spread_mm / np.sqrt(len(w)))
    s0, k = fit_gaussian_error(np.array(res), np.array(spread))
    params = {
        "calibration_a": a,
        "calibration_b": b,
        "sigma0_mm": s0,
        "sigma_spread_k": k,
        "plaque_logistic": [float(v) for v in plaque_w],
    }
    card = carotid_card(params, fit_seconds=time.time() - t0)
    module = carotid.CarotidImtModule(LoadedCard(card, None))
    card["held_out"] = carotid_metrics(module, cases(CAROTID_RECIPES["held_out"]))
    card["held_out"]["train_fit_failures"] = len(train) - len(train_ok)
    card["training_data"]["fit_seconds"] = round(time.time() - t0, 1)
    _write(carotid.NAME, carotid.VERSION, card, None)
    return card


def carotid_thresholds() -> dict[str, Any]:
    """Return the carotid decision thresholds written into the card."""
    return {
        "thickening_mm": 0.9,
        "plaque_mm": 1.5,
        "low_confidence_below": 0.8,
        "thickened_if": "P(IMT >= thickening_mm) >= 0.5 under the fitted Gaussian error model",
        "plaque_if": "calibrated logistic P(plaque) >= 0.5",
    }


def carotid_card(params: dict[str, Any], fit_seconds: float) -> dict[str, Any]:
    """Return the carotid IMT card (held-out metrics are added after evaluation)."""
    return {
        "name": carotid.NAME,
        "version": carotid.VERSION,
        "task": (
            "Carotid far-wall intima-media thickness in a longitudinal B-mode view, with "
            "thickening and plaque calls"
        ),
        "kind": "measurement module: classical image processing with fitted parameters, no network",
        "exam_types": ["carotid"],
        "input": {
            "name": "frames",
            "shape": ["frames", "H", "W"],
            "dtype": "uint8 grey, pixel spacing (row, col) mm per pixel required",
            "preprocessing": {
                "lumen": (
                    "median row profile smoothed 0.3 mm; lumen = longest band darker than "
                    f"{carotid.LUMEN_DARK_FRACTION} x median, >= {carotid.LUMEN_MIN_MM} mm, with "
                    f"a bright wall within {carotid.WALL_BELOW_MM} mm below"
                ),
                "windows": f"{carotid.WINDOW_MM} mm lateral windows, 50% overlap",
                "edges": (
                    "LI = half-maximum crossing from lumen to far wall (sub-pixel); "
                    "MA = adventitia peak {}-{} mm below LI (parabolic sub-pixel)".format(
                        *carotid.PEAK_SEARCH_MM
                    )
                ),
                "pooling": "median over windows, median over frames; focal max = max of a "
                "3-window running median of calibrated window IMT",
            },
        },
        "labels": ["carotid-far-wall-imt", "carotid-plaque", "carotid-imt-not-measurable"],
        "outputs": {
            "carotid-far-wall-imt": "mean far-wall IMT in mm; abnormal = thickened",
            "carotid-plaque": "max focal IMT in mm; abnormal = plaque present",
        },
        "codes": {
            "system": "urn:sonobridge:finding",
            "note": CODES_NOTE,
            "units": {"carotid-far-wall-imt": "mm", "carotid-plaque": "mm"},
        },
        "thresholds": carotid_thresholds(),
        "parameters": params,
        "calibration": {
            "imt": "linear map of raw LI-to-adventitia-peak distance to IMT (least squares, train)",
            "confidence": (
                "thickening: Gaussian error model sigma^2 = sigma0^2 + (k * window spread / "
                "sqrt(frames))^2 fitted by maximum likelihood on the calibration split; plaque: "
                "logistic regression on (max - 1.5 mm, max - mean IMT) fitted on train"
            ),
            "ece_bins": 10,
        },
        "training_data": {
            "description": "Synthetic longitudinal carotid cines with known far-wall IMT and "
            "optional focal plaque; 20% of exams carry a low-gain or motion-blur fault.",
            "splits": {k: r.describe() for k, r in CAROTID_RECIPES.items()},
            "fit_command": FIT_COMMAND,
            "fit_seconds": round(fit_seconds, 1),
        },
        "held_out": {},
        "intended_use": (
            "Decision support for hypertension / diabetes target-organ screening in township "
            "carotid exams; low-confidence results go to a county expert."
        ),
        "disclaimer": DISCLAIMER,
        "sha256": None,
    }


def main(argv: list[str] | None = None) -> None:
    """Fit every clinical module (or the ones named) and write models/<name>/<version>/."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("modules", nargs="*", default=["carotid-imt", "kidney", "focal-lesions"])
    args = parser.parse_args(argv)
    fitters = {"carotid-imt": fit_carotid}
    for name in args.modules:
        t = time.time()
        card = fitters[name]()
        print(f"{name}: {time.time() - t:.1f}s held-out {json.dumps(card['held_out'])}")


if __name__ == "__main__":
    main()
