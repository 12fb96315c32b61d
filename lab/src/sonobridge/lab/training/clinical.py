"""Fit, evaluate and export the clinical modules with their cards (fixed seeds, one command)."""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from sonobridge.inference.modules import carotid, carotid_evidence, kidney, lesions
from sonobridge.inference.modules.common import MODELS_DIR, LoadedCard
from sonobridge.inference.modules.terminology import card_codes
from sonobridge.lab.held_out import (
    Recipe,
    carotid_metrics,
    cases,
    kidney_metrics,
    lesion_metrics,
    match,
    visible_lesions,
)
from sonobridge.lab.training.clinical_fit import (
    fit_gaussian_error,
    fit_least_absolute,
    fit_linear,
    fit_logistic,
)

DISCLAIMER = "reference model, not for clinical use"
FIT_COMMAND = "uv run --package sonobridge-lab python -m sonobridge.lab.training.clinical"

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
                    f"{carotid_evidence.LUMEN_DARK_FRACTION} x median, >= "
                    f"{carotid_evidence.LUMEN_MIN_MM} mm, with "
                    f"a bright wall within {carotid_evidence.WALL_BELOW_MM} mm below"
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
        "codes": card_codes(carotid.CODES, sorted(carotid.EXAM_TYPES)),
        "thresholds": carotid_thresholds(),
        "evidence": carotid_evidence.describe(),
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


LESION_TYPES = ("thyroid", "liver", "abdomen")
LESION_RECIPES = {
    "train": Recipe(LESION_TYPES, seed=61, count=180, n_frames=1, n_lesions=None),
    "calibration": Recipe(LESION_TYPES, seed=62, count=150, n_frames=1),
    "held_out": Recipe(LESION_TYPES, seed=63, count=150, n_frames=2),
}
SEG_SIZE = 128
LESION_SCALES = (3, 7, 15, 31)
LESION_MIN_AREA_MM2 = 4.0
LESION_SEG_THRESHOLD = 0.5
LESION_MIN_SIZE_PAIRS = 8
# Inputs of the detection-confidence logistic, in the order Candidate.features returns them.
LESION_DETECTION_FEATURES = (
    "mean P(lesion)",
    "max P(lesion)",
    "log(area mm2 + 1)",
    "touches image edge",
    "contrast-to-noise against a ring 1-4 mm outside",
    "compactness (area / disc of the max Feret diameter)",
    "P(cystic) share",
    "posterior enhancement (grey behind minus beside, /255)",
)


def _ort(model) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _pixel_labels(case, size: int) -> np.ndarray:
    h, w = case.frames[0].pixels.shape
    lab = np.zeros((h, w), dtype=np.int64)
    if "kidney" in case.anatomy[0]:
        lab[case.anatomy[0]["kidney"]["mask"] & case.fov_mask] = 1
    for lesion in case.anatomy[0]["lesions"]:
        lab[lesion["mask"] & case.fov_mask] = 1 if lesion["kind"] == "cystic" else 2
    # Majority class per output cell (frames are a multiple of the network size).
    f = h // size
    onehot = np.stack([(lab == k) for k in range(3)]).reshape(3, size, f, size, f).mean((2, 4))
    return onehot.argmax(0)


def _pixel_set(case_list, feat_session, spec, rng, per_class=300, classes=3):
    from sonobridge.inference.imaging.preprocess import to_tensor

    xs, ys = [], []
    for case in case_list:
        x = to_tensor(case.frames[0].pixels, spec)
        feats = feat_session.run(["features"], {"image": x})[0][0]
        labels = _pixel_labels(case, spec.height)
        flat_f = feats.reshape(feats.shape[0], -1).T
        flat_y = labels.ravel()
        for k, n in [(0, per_class * 2)] + [(c, per_class) for c in range(1, classes)]:
            idx = np.flatnonzero(flat_y == k)
            if idx.size:
                pick = rng.choice(idx, size=min(n, idx.size), replace=False)
                xs.append(flat_f[pick])
                ys.append(flat_y[pick])
    return np.concatenate(xs), np.concatenate(ys)


def fit_lesions() -> dict[str, Any]:
    """Train the pixel head, calibrate it, fit detection confidence and size; evaluate."""
    from sonobridge.inference.imaging.preprocess import InputSpec
    from sonobridge.lab.training.clinical_graphs import (
        pixel_feature_model,
        segmentation_model,
    )
    from sonobridge.lab.training.mlp import fit_temperature, train_head

    t0 = time.time()
    spec = InputSpec("image", SEG_SIZE, SEG_SIZE)
    feat_session = _ort(pixel_feature_model(SEG_SIZE, LESION_SCALES))
    rng = np.random.default_rng(64)
    train = cases(LESION_RECIPES["train"])
    calib = cases(LESION_RECIPES["calibration"])
    fx, fy = _pixel_set(train, feat_session, spec, rng)
    head = train_head(fx, fy, 3, seed=65, hidden=24, epochs=500, lr=0.01)
    cx, cy = _pixel_set(calib, feat_session, spec, rng)
    temperature = fit_temperature(head.logits(cx), cy)
    model = segmentation_model(SEG_SIZE, LESION_SCALES, head, temperature, doc=lesions.NAME)
    onnx_bytes = model.SerializeToString()
    params = {
        "segment_threshold": LESION_SEG_THRESHOLD,
        "min_area_mm2": LESION_MIN_AREA_MM2,
        "detection_logistic": [0.0] * (1 + len(LESION_DETECTION_FEATURES)),
        "size_calibration": [1.0, 0.0],
        "size_calibration_network_border": [1.0, 0.0],
    }
    card = lesion_card(params, temperature)
    module = lesions.FocalLesionModule(LoadedCard(card, onnx_bytes))
    feats, hits, sizes = [], [], []
    n_true = 0
    for case in calib:
        found = module.frame_candidates(case.frames[0])
        truths = visible_lesions(case, 0, LESION_MIN_AREA_MM2)
        n_true += len(truths)
        for d, t, _ in match(found, truths):
            feats.append(d.features())
            hits.append(t is not None)
            if t is not None and t["whole"] and not d.touches_edge:
                sizes.append((d.feret_mm, t["diameter_mm"], d.redrawn))
    w = fit_logistic(np.array(feats), np.array(hits))
    sz = np.array(sizes, dtype=float)
    params["detection_logistic"] = [float(v) for v in w]
    shared = list(fit_least_absolute(sz[:, 0], sz[:, 1]))
    # Redrawn borders sit on the lesion's edge; the network's own borders are blurred, so
    # each gets its own map (the shared one when a kind has too few pairs to fit).
    for key, redrawn in (("size_calibration", 1.0), ("size_calibration_network_border", 0.0)):
        part = sz[sz[:, 2] == redrawn]
        fitted = len(part) >= LESION_MIN_SIZE_PAIRS
        params[key] = list(fit_least_absolute(part[:, 0], part[:, 1])) if fitted else shared
    card["thresholds"]["report_if_confidence_at_least"] = report_threshold(
        np.array(feats), np.array(hits), w, n_true
    )
    card["parameters"] = params
    card["training_data"]["pixels"] = {"train": len(fy), "calibration": len(cy)}
    card["training_data"]["calibration_candidates"] = len(feats)
    module = lesions.FocalLesionModule(LoadedCard(card, onnx_bytes))
    card["held_out"] = lesion_metrics(module, cases(LESION_RECIPES["held_out"]))
    card["training_data"]["fit_seconds"] = round(time.time() - t0, 1)
    _write(lesions.NAME, lesions.VERSION, card, onnx_bytes)
    return card


def report_threshold(feats: np.ndarray, hits: np.ndarray, w: np.ndarray, n_true: int) -> float:
    """Return the detection confidence to report at: the F1 optimum on the calibration split.

    F1: at the F2 optimum thyroid frames filled with doubtful "lesions" that only add noise to
    the expert's read; doubtful regions still show in the count finding's uncertain_regions.
    """
    conf = 1 / (1 + np.exp(-(w[0] + feats @ w[1:])))
    best, best_f1 = 0.5, -1.0
    for th in np.round(np.arange(0.2, 0.71, 0.05), 2):
        tp = float((hits & (conf >= th)).sum())
        precision, recall = tp / max(float((conf >= th).sum()), 1), tp / max(n_true, 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-9)
        if f1 > best_f1:
            best, best_f1 = float(th), f1
    return best


def lesion_card(params: dict[str, Any], temperature: float) -> dict[str, Any]:
    """Return the focal-lesion card (held-out metrics are added after evaluation)."""
    return {
        "name": lesions.NAME,
        "version": lesions.VERSION,
        "task": "Detect and segment focal lesions; count, longest diameter in mm, cystic vs solid",
        "kind": "pixel segmentation network (ONNX) plus border refinement and fitted region "
        "post-processing",
        "exam_types": list(LESION_TYPES),
        "input": {
            "name": "image",
            "shape": ["N", 1, SEG_SIZE, SEG_SIZE],
            "dtype": "float32",
            "preprocessing": {
                "resize": f"whole frame to {SEG_SIZE}x{SEG_SIZE} with Pillow bilinear",
                "resample": "bilinear",
                "scale": 1.0 / 255.0,
                "probabilities": "resized back to frame size (bilinear) before thresholding",
            },
        },
        "outputs": {"probabilities": f"float32 [N, 3, {SEG_SIZE}, {SEG_SIZE}] softmax"},
        "network": {
            "features": f"fixed: intensity, box means at {list(LESION_SCALES)}, local std, "
            "centre-surround differences, below-vs-above means (enhancement/shadowing), "
            "field-of-view fraction, depth",
            "head": "per-pixel MLP (24 ReLU units) as 1x1 convolutions, numpy Adam, seed 65",
        },
        "regions": {
            "threshold": "P(cystic) + P(solid) >= segment_threshold, 1-pixel opening, "
            "connected regions",
            "border": f"grey level smoothed {lesions.REFINE_SMOOTH_MM} mm; lesion level = median "
            f"in the region's top {1 - lesions.REFINE_CORE_QUANTILE:.0%} probability, tissue "
            f"level = median in a ring 1-{lesions.REFINE_MARGIN_MM} mm outside; new border "
            "where the grey level crosses midway (component holding the core, holes filled); "
            f"kept as is when the levels differ by < {lesions.REFINE_MIN_CONTRAST} grey levels; "
            "a solid (network) region keeps the new border only when it overlaps the network "
            f"region at IoU >= {lesions.SOLID_MIN_AGREEMENT} (faint hyperechoic lesions shadow, "
            "and the crossing then follows the shadow)",
            "size": "max Feret diameter of the region, least-absolute-error linear map, one for "
            "redrawn borders and one for network borders",
            "surroundings": f"mean grey (smoothed frame) inside vs a ring {lesions.RING_INNER_MM}-"
            f"{lesions.RING_OUTER_MM} mm outside, contrast-to-noise = |difference| / (ring std + "
            "1); posterior enhancement = mean grey in the band half a region height below it "
            "minus the same band shifted one region width sideways; speckle clusters the "
            "network fires on barely differ from their ring, so the detection model weighs this",
        },
        "labels": list(lesions.CLASSES),
        "codes": card_codes(lesions.CODES, sorted(lesions.EXAM_TYPES)),
        "thresholds": {
            "segment_threshold": LESION_SEG_THRESHOLD,
            "min_area_mm2": LESION_MIN_AREA_MM2,
            "report_if_confidence_at_least": 0.5,
            "report_threshold_chosen": "F1 optimum over 0.20-0.70 on calibration-split candidates",
            "low_confidence_below": 0.7,
            "low_confidence_also_when": "lesion touches the image edge (size may be cut off)",
            "kind": "cystic if mean P(cystic) / (P(cystic) + P(solid)) >= 0.5 in the region",
        },
        "parameters": params,
        "calibration": {
            "pixels": "temperature scaling on calibration-split pixels",
            "temperature": temperature,
            "detection": "logistic regression on the region features "
            f"({'; '.join(LESION_DETECTION_FEATURES)}) fitted on calibration-split candidates "
            "matched at IoU >= 0.1",
            "size": "least-absolute-error linear maps of max Feret diameter to true diameter, "
            "redrawn and network borders separately (calibration split)",
            "ece_bins": 10,
        },
        "training_data": {
            "description": "Synthetic thyroid (linear), liver and abdomen (convex) frames with "
            "0-2 elliptical cystic, hypoechoic or hyperechoic solid lesions and their masks; 20% "
            "of exams carry a low-gain or motion-blur fault. Train split: pixel head; "
            "calibration split: pixel temperature, detection-confidence logistic, report "
            "threshold and size map; held-out split only scored.",
            "splits": {k: r.describe() for k, r in LESION_RECIPES.items()},
            "fit_command": FIT_COMMAND,
        },
        "held_out": {},
        "intended_use": "Flag focal lesions for follow-up in township thyroid and abdominal "
        "exams; low-confidence results go to a county expert.",
        "disclaimer": DISCLAIMER,
        "sha256": None,
    }


KIDNEY_RECIPES = {
    "train": Recipe(("kidney",), seed=71, count=100, n_frames=1, n_lesions=0),
    "calibration": Recipe(("kidney",), seed=72, count=60, n_frames=1, n_lesions=0),
    "held_out": Recipe(("kidney",), seed=73, count=80, n_frames=1, n_lesions=0),
}
KIDNEY_SCALES = (7, 15, 31, 63)


def fit_kidney() -> dict[str, Any]:
    """Train the kidney pixel head, fit length/echogenicity maps and error models; evaluate."""
    from sonobridge.inference.imaging.preprocess import InputSpec
    from sonobridge.lab.training.clinical_graphs import (
        pixel_feature_model,
        segmentation_model,
    )
    from sonobridge.lab.training.mlp import fit_temperature, train_head

    t0 = time.time()
    spec = InputSpec("image", SEG_SIZE, SEG_SIZE)
    feat_session = _ort(pixel_feature_model(SEG_SIZE, KIDNEY_SCALES))
    rng = np.random.default_rng(74)
    train = cases(KIDNEY_RECIPES["train"])
    calib = cases(KIDNEY_RECIPES["calibration"])
    fx, fy = _pixel_set(train, feat_session, spec, rng, per_class=250, classes=2)
    head = train_head(fx, fy, 2, seed=75, hidden=24, epochs=400, lr=0.01)
    cx, cy = _pixel_set(calib, feat_session, spec, rng, per_class=250, classes=2)
    temperature = fit_temperature(head.logits(cx), cy)
    onnx_bytes = segmentation_model(
        SEG_SIZE, KIDNEY_SCALES, head, temperature, doc=kidney.NAME
    ).SerializeToString()
    params: dict[str, Any] = {
        "segment_threshold": 0.5,
        "length_calibration": [1.0, 0.0],
        "length_sigma_mm": 5.0,
        "length_sigma_edge_mm": 10.0,
        "length_sigma_ring_k": 0.0,
        "echo_calibration": [1.0, 0.0],
        "echo_sigma": 0.2,
    }
    card = kidney_card(params, temperature)
    module = kidney.KidneyModule(LoadedCard(card, onnx_bytes))

    def rows(case_list):
        out = []
        for case in case_list:
            v = module.views(case.frames)
            if v:
                t = case.anatomy[0]["kidney"]
                ratio = np.log(t["cortical_echogenicity"] / case.extra["reference_echo"])
                out.append(
                    (
                        v[0].raw_length_mm,
                        t["length_mm"],
                        v[0].touches_edge,
                        v[0].contrast,
                        ratio,
                        v[0].ring_contrast,
                    )
                )
        return np.array(out, dtype=float)

    tr = rows(train)
    whole = tr[tr[:, 2] == 0]
    params["length_calibration"] = list(fit_least_absolute(whole[:, 0], whole[:, 1]))
    ok = np.isfinite(tr[:, 3])
    params["echo_calibration"] = list(fit_linear(tr[ok, 3], tr[ok, 4]))
    ca = rows(calib)
    a, b = params["length_calibration"]
    res = a * ca[:, 0] + b - ca[:, 1]
    whole_c = ca[:, 2] == 0
    # A faint capsule ring (blur, low gain) places the poles less surely: sigma grows as 1/ring.
    s0, ring_k = fit_gaussian_error(res[whole_c], 1 / np.maximum(ca[whole_c, 5], 0.5))
    edge_res = res[~whole_c]
    base = s0**2 + (ring_k / np.maximum(ca[~whole_c, 5], 0.5)) ** 2
    s_edge = float(np.sqrt(max(np.mean(edge_res**2 - base), 0))) if edge_res.size else 3 * s0
    ea, eb = params["echo_calibration"]
    ok = np.isfinite(ca[:, 3])
    s_echo = float(np.sqrt(np.mean((ea * ca[ok, 3] + eb - ca[ok, 4]) ** 2)))
    params.update(
        length_sigma_mm=s0,
        length_sigma_edge_mm=s_edge,
        length_sigma_ring_k=ring_k,
        echo_sigma=s_echo,
    )
    card["parameters"] = params
    card["training_data"]["pixels"] = {"train": len(fy), "calibration": len(cy)}
    module = kidney.KidneyModule(LoadedCard(card, onnx_bytes))
    card["held_out"] = kidney_metrics(module, cases(KIDNEY_RECIPES["held_out"]))
    card["training_data"]["fit_seconds"] = round(time.time() - t0, 1)
    _write(kidney.NAME, kidney.VERSION, card, onnx_bytes)
    return card


def kidney_card(params: dict[str, Any], temperature: float) -> dict[str, Any]:
    """Return the kidney card (held-out metrics are added after evaluation)."""
    return {
        "name": kidney.NAME,
        "version": kidney.VERSION,
        "task": "Kidney long-axis length (mm) and cortical echogenicity relative to adjacent "
        "parenchyma, with small and echogenic calls",
        "kind": "pixel segmentation network (ONNX) to locate the kidney, capsule ellipse search "
        "to measure it, fitted calibration maps",
        "exam_types": ["kidney"],
        "input": {
            "name": "image",
            "shape": ["N", 1, SEG_SIZE, SEG_SIZE],
            "dtype": "float32",
            "preprocessing": {
                "resize": f"whole frame to {SEG_SIZE}x{SEG_SIZE} with Pillow bilinear",
                "resample": "bilinear",
                "scale": 1.0 / 255.0,
                "probabilities": "resized back to frame size (bilinear) before thresholding",
            },
        },
        "outputs": {"probabilities": f"float32 [N, 2, {SEG_SIZE}, {SEG_SIZE}] softmax"},
        "network": {
            "features": f"fixed: intensity, box means at {list(KIDNEY_SCALES)}, local std, "
            "centre-surround differences, below-vs-above means, field-of-view fraction, depth",
            "head": "per-pixel MLP (24 ReLU units) as 1x1 convolutions, numpy Adam, seed 75",
        },
        "measurement": {
            "locate": "the network's largest kidney region (probability-weighted centre)",
            "capsule": f"ellipse search within {kidney.CAPSULE_CENTRE_MM} mm of that centre, "
            f"semi-minor {list(kidney.SEMI_MINOR_MM)} mm, aspect {list(kidney.ASPECT)}, angle "
            "+-0.3 rad, maximising the mean over the perimeter of (ring grey - mean of grey "
            f"{kidney.CAPSULE_SIDE_MM} mm inside and outside, clipped to "
            f"+-{kidney.CAPSULE_CONTRAST_CAP}) on a {kidney.CAPSULE_SMOOTH_MM} mm "
            f"smoothed frame; coarse grid, then the {kidney.CAPSULE_REFINE_STARTS} best refined; "
            f">= {kidney.CAPSULE_MIN_VISIBLE:.0%} of the ring inside the field of view",
            "length": "2 x capsule semi-major axis, least-absolute-error linear map (train); "
            "median over up to "
            f"{kidney.MAX_FRAMES} frames whose kidney does not touch the image edge",
            "echogenicity": f"median grey of the cortex band {list(kidney.CORTEX_MM)} "
            f"mm inside the capsule minus that of a {list(kidney.REFERENCE_MM)} mm band of "
            "adjacent parenchyma outside it at the same depths (log-compressed image, so a grey "
            "difference is a log ratio); fitted linear map to log(cortex / reference backscatter)",
        },
        "labels": list(kidney.CLASSES),
        "codes": card_codes(kidney.CODES, sorted(kidney.EXAM_TYPES)),
        "thresholds": {
            "segment_threshold": 0.5,
            "small_below_mm": 90.0,
            "echogenic_ratio_at_least": 1.0,
            "low_confidence_below": 0.8,
            "low_confidence_also_when": "kidney touches the image edge (length may be cut off)",
            "configurable": "edit thresholds in card.json (e.g. small_below_mm) and bump version",
        },
        "parameters": params,
        "calibration": {
            "pixels": "temperature scaling on calibration-split pixels",
            "temperature": temperature,
            "confidence": "Gaussian error models: length sigma^2 = s0^2 + (k / ring contrast)^2 "
            "(+ edge term when cut off) fitted by maximum likelihood on calibration residuals; "
            "echogenicity sigma from calibration log-ratio residuals",
            "ece_bins": 10,
        },
        "training_data": {
            "description": "Synthetic long-axis kidney cines (convex probe) with known length, "
            "width, cortical backscatter and mask; reference = backscatter of the parenchyma "
            "layer around the kidney (liver proxy); 20% of exams carry a low-gain or "
            "motion-blur fault.",
            "splits": {k: r.describe() for k, r in KIDNEY_RECIPES.items()},
            "fit_command": FIT_COMMAND,
        },
        "held_out": {},
        "intended_use": "Diabetic / chronic kidney disease screening in township kidney exams; "
        "low-confidence results go to a county expert.",
        "disclaimer": DISCLAIMER,
        "sha256": None,
    }


def main(argv: list[str] | None = None) -> None:
    """Fit every clinical module (or the ones named) and write models/<name>/<version>/."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("modules", nargs="*", default=["carotid-imt", "kidney", "focal-lesions"])
    args = parser.parse_args(argv)
    fitters = {"carotid-imt": fit_carotid, "kidney": fit_kidney, "focal-lesions": fit_lesions}
    for name in args.modules:
        t = time.time()
        card = fitters[name]()
        print(f"{name}: {time.time() - t:.1f}s held-out {json.dumps(card['held_out'])}")


if __name__ == "__main__":
    main()
