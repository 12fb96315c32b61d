"""Seeded synthetic exam sets with ground truth, and metrics computed through module.run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sonobridge.inference.modules.base import ExamModule, ModuleFrame
from sonobridge.inference.modules.kidney import Capsule
from sonobridge.lab.evaluation import expected_calibration_error
from sonobridge.lab.synthetic import GENERATOR_VERSION, AcquisitionSpec, Fault, generate_exam
from sonobridge.lab.synthetic.scene import Kidney, Layer, build_scene

ECE_BINS = 10


@dataclass(frozen=True)
class Recipe:
    """How a split is drawn from the generator: exam type, size, frames, faults and seed."""

    exam_types: tuple[str, ...]
    seed: int
    count: int
    size: int = 256
    n_frames: int = 2
    fault_rate: float = 0.2
    faults: tuple[str, ...] = ("low_gain", "motion_blur")
    n_lesions: int | None = None

    def describe(self) -> dict[str, Any]:
        """Return the recipe as card JSON."""
        return {
            "generator": "sonobridge.lab.synthetic.generate_exam",
            "generator_version": GENERATOR_VERSION,
            "exam_types": list(self.exam_types),
            "seed": self.seed,
            "exams": self.count,
            "frames_per_exam": self.n_frames,
            "frame_size": [self.size, self.size],
            "fault_rate": self.fault_rate,
            "faults": list(self.faults),
            "lesions_per_scene": "generator default" if self.n_lesions is None else self.n_lesions,
        }


@dataclass
class SyntheticCase:
    """One exam's module frames plus what the generator knows about it."""

    exam_type: str
    frames: list[ModuleFrame]
    anatomy: list[dict[str, Any]]
    spacing_mm: tuple[float, float]
    fov_mask: np.ndarray
    faults: tuple[str, ...]
    extra: dict[str, Any] = field(default_factory=dict)


def _reference_echo(seed: int, exam_type: str, n_lesions: int | None) -> float | None:
    # generate_exam draws the scene first from default_rng(seed) when no probe fault is asked
    # for, so rebuilding it recovers the parenchyma the kidney is compared with.
    scene = build_scene(np.random.default_rng(seed), exam_type, n_lesions)
    prev = None
    for s in scene.structures:
        if isinstance(s, Kidney):
            return None if prev is None else float(prev.echo)
        if isinstance(s, Layer):
            prev = s
    return None


def cases(recipe: Recipe) -> list[SyntheticCase]:
    """Generate the recipe's exams deterministically."""
    rng = np.random.default_rng(recipe.seed)
    out = []
    for i in range(recipe.count):
        exam_type = recipe.exam_types[i % len(recipe.exam_types)]
        faults: frozenset[Fault] = frozenset()
        if rng.random() < recipe.fault_rate:
            faults = frozenset({Fault(str(rng.choice(recipe.faults)))})
        seed = recipe.seed * 100_000 + i
        spec = AcquisitionSpec(
            exam_type=exam_type,
            faults=faults,
            height=recipe.size,
            width=recipe.size,
            n_lesions=recipe.n_lesions,
        )
        exam = generate_exam(seed, spec, n_frames=recipe.n_frames)
        frames = [
            ModuleFrame(
                pixels=f.image,
                spacing_mm=f.truth.pixel_spacing_mm,
                sop_instance_uid=f"2.25.{seed}",
                frame_index=k,
            )
            for k, f in enumerate(exam.frames)
        ]
        t0 = exam.frames[0].truth
        extra = {}
        if exam_type == "kidney":
            extra["reference_echo"] = _reference_echo(seed, exam_type, recipe.n_lesions)
        out.append(
            SyntheticCase(
                exam_type,
                frames,
                [f.truth.anatomy for f in exam.frames],
                t0.pixel_spacing_mm,
                t0.fov_mask,
                t0.faults,
                extra,
            )
        )
    return out


def _ece(conf: Sequence[float], ok: Sequence[bool]) -> float:
    if not len(conf):
        return float("nan")
    return expected_calibration_error(np.asarray(conf), np.asarray(ok), bins=ECE_BINS)


def _finding(output, code: str):
    return next((f for f in output.findings if f.code == code), None)


def carotid_metrics(module: ExamModule, held_out: list[SyntheticCase]) -> dict[str, Any]:
    """Run the carotid module on every case and score IMT, thickening and plaque calls."""
    err, max_err, thick_conf, thick_ok, plq_conf, plq_ok, low, low_ok, hi_ok = (
        [] for _ in range(9)
    )
    tp = fp = fn = tn = 0
    measured = 0
    for case in held_out:
        out = module.run(case.frames)
        truth = case.anatomy[0]["carotid"]
        imt = _finding(out, "carotid-far-wall-imt")
        plq = _finding(out, "carotid-plaque")
        if imt is None or plq is None:
            low.append(True)
            continue
        measured += 1
        err.append(abs(imt.value - truth["imt_mm"]))
        if truth["plaque"]:
            max_err.append(abs(plq.value - truth["max_imt_mm"]))
        ok_t = imt.abnormal == (truth["imt_mm"] >= 0.9)
        ok_p = plq.abnormal == truth["plaque"]
        thick_conf.append(imt.confidence)
        thick_ok.append(ok_t)
        plq_conf.append(plq.confidence)
        plq_ok.append(ok_p)
        is_low = imt.low_confidence or plq.low_confidence
        low.append(is_low)
        (low_ok if is_low else hi_ok).append(ok_t and ok_p)
        tp += plq.abnormal and truth["plaque"]
        fp += plq.abnormal and not truth["plaque"]
        fn += (not plq.abnormal) and truth["plaque"]
        tn += (not plq.abnormal) and not truth["plaque"]
    return {
        "exams": len(held_out),
        "measured": measured,
        "imt_mae_mm": float(np.mean(err)),
        "imt_p90_abs_error_mm": float(np.percentile(err, 90)),
        "plaque_max_imt_mae_mm": float(np.mean(max_err)) if max_err else float("nan"),
        "thickening_accuracy": float(np.mean(thick_ok)),
        "thickening_ece": _ece(thick_conf, thick_ok),
        "plaque_sensitivity": tp / max(tp + fn, 1),
        "plaque_specificity": tn / max(tn + fp, 1),
        "plaque_ece": _ece(plq_conf, plq_ok),
        "low_confidence_fraction": float(np.mean(low)),
        "accuracy_when_confident": float(np.mean(hi_ok)) if hi_ok else float("nan"),
        "accuracy_when_low_confidence": float(np.mean(low_ok)) if low_ok else float("nan"),
    }


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = float((a & b).sum())
    return inter / max(float((a | b).sum()), 1.0)


def visible_lesions(case: SyntheticCase, frame_index: int, min_area_mm2: float) -> list[dict]:
    """Return the frame's true lesions that show in the field of view, with visible masks."""
    px_area = case.spacing_mm[0] * case.spacing_mm[1]
    out = []
    for lesion in case.anatomy[frame_index]["lesions"]:
        full = lesion["mask"]
        vis = full & case.fov_mask
        if vis.sum() * px_area >= min_area_mm2:
            whole = bool(vis.sum() >= 0.95 * full.sum())
            kind = "cystic" if lesion["kind"] == "cystic" else "solid"
            out.append({**lesion, "visible": vis, "whole": whole, "kind2": kind})
    return out


def match(detections: list, truths: list[dict]) -> list[tuple[Any, dict | None, float]]:
    """Greedily pair detections (most confident first) with true lesions at IoU >= 0.1."""
    used: set[int] = set()
    pairs = []
    for d in sorted(detections, key=lambda c: -c.confidence):
        best, best_iou = None, 0.1
        for j, t in enumerate(truths):
            if j not in used and (iou := _iou(d.mask, t["visible"])) >= best_iou:
                best, best_iou = j, iou
        if best is not None:
            used.add(best)
        pairs.append((d, None if best is None else truths[best], best_iou))
    return pairs


def lesion_metrics(module: Any, held_out: list[SyntheticCase]) -> dict[str, Any]:
    """Score detection P/R, Dice, size MAE, kind accuracy and ECEs on the module's key frames."""
    min_area = float(module.params["min_area_mm2"])
    n_true = n_rep = n_hit = 0
    dice, size_err, kind_ok, kind_conf, det_conf, det_ok, count_ok, low = ([] for _ in range(8))
    for case in held_out:
        out = module.run(case.frames)
        key, found = module.detect(case.frames)
        idx = 0 if key is None else key.frame_index
        truths = visible_lesions(case, idx, min_area)
        reported = [c for c in found if c.confidence >= module.report_above]
        count = next(f for f in out.findings if f.code == "focal-lesion-count")
        count_ok.append(int(count.value) == len(truths))
        low.append(any(f.low_confidence for f in out.findings))
        n_true += len(truths)
        n_rep += len(reported)
        for d, t, _ in match(found, truths):
            det_conf.append(d.confidence)
            det_ok.append(t is not None)
            if t is None or d.confidence < module.report_above:
                continue
            n_hit += 1
            inter = float((d.mask & t["visible"]).sum())
            dice.append(2 * inter / (d.mask.sum() + t["visible"].sum()))
            if t["whole"] and not d.touches_edge:
                size_err.append(abs(d.diameter_mm - t["diameter_mm"]))
            kind_ok.append(d.kind == t["kind2"])
            kind_conf.append(d.kind_confidence)
    return {
        "exams": len(held_out),
        "true_lesions": n_true,
        "reported_lesions": n_rep,
        "precision": n_hit / max(n_rep, 1),
        "recall": n_hit / max(n_true, 1),
        "dice_mean_matched": float(np.mean(dice)) if dice else float("nan"),
        "size_mae_mm": float(np.mean(size_err)) if size_err else float("nan"),
        "size_pairs": len(size_err),
        "kind_accuracy": float(np.mean(kind_ok)) if kind_ok else float("nan"),
        "kind_ece": _ece(kind_conf, kind_ok),
        "detection_ece": _ece(det_conf, det_ok),
        "count_accuracy": float(np.mean(count_ok)),
        "low_confidence_fraction": float(np.mean(low)),
    }


def kidney_metrics(module: Any, held_out: list[SyntheticCase]) -> dict[str, Any]:
    """Score kidney length, small call, echogenicity ratio and call, mask Dice and ECEs."""
    len_err, len_err_whole, small_c, small_ok, echo_err, echo_c, echo_ok, dice, low = (
        [] for _ in range(9)
    )
    found = 0
    for case in held_out:
        out = module.run(case.frames)
        truth = case.anatomy[0]["kidney"]
        low.append(any(f.low_confidence for f in out.findings))
        length = _finding(out, "kidney-length")
        if length is None:
            continue
        found += 1
        err = abs(length.value - truth["length_mm"])
        len_err.append(err)
        if length.attributes.get("cut_off_by_image_edge") == "false":
            len_err_whole.append(err)
        small_c.append(length.confidence)
        small_ok.append(length.abnormal == (truth["length_mm"] < module.small_mm))
        frame = out.details["overlay_frame"]["frame_index"]
        capsule = Capsule.from_description(out.details["capsule_mm"])
        mask = capsule.inside(case.fov_mask.shape, case.spacing_mm) & case.fov_mask
        t_mask = case.anatomy[frame]["kidney"]["mask"] & case.fov_mask
        dice.append(2 * float((mask & t_mask).sum()) / (mask.sum() + t_mask.sum()))
        echo = _finding(out, "kidney-cortical-echogenicity-ratio")
        ref = case.extra.get("reference_echo")
        if echo is not None and ref:
            true_ratio = truth["cortical_echogenicity"] / ref
            echo_err.append(abs(np.log(echo.value) - np.log(true_ratio)))
            echo_c.append(echo.confidence)
            echo_ok.append(echo.abnormal == (true_ratio >= module.echogenic_ratio))
    return {
        "exams": len(held_out),
        "kidney_found": found,
        "length_mae_mm": float(np.mean(len_err)),
        "length_mae_mm_not_cut_off": float(np.mean(len_err_whole)) if len_err_whole else None,
        "not_cut_off": len(len_err_whole),
        "small_accuracy": float(np.mean(small_ok)),
        "small_ece": _ece(small_c, small_ok),
        "echo_ratio_mae_log": float(np.mean(echo_err)) if echo_err else float("nan"),
        "echogenic_accuracy": float(np.mean(echo_ok)) if echo_ok else float("nan"),
        "echogenic_ece": _ece(echo_c, echo_ok),
        "mask_dice_mean": float(np.mean(dice)) if dice else float("nan"),
        "low_confidence_fraction": float(np.mean(low)),
    }
