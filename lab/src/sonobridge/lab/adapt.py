"""Adapt the image-quality head to labelled real frames and register the version in shadow.

`uv run --package sonobridge-lab python -m sonobridge.lab.adapt --frames DIR --out MODELS_DIR`
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import io
import json
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image
from prometheus_client import CollectorRegistry

from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.inference.domain.validation import DeviceModel
from sonobridge.inference.handlers import Dependencies
from sonobridge.inference.handlers.reports import LabelledFrame, report_validation
from sonobridge.inference.imaging.decode import FrameSelection, decode_image
from sonobridge.inference.imaging.preprocess import InputSpec, to_tensor
from sonobridge.inference.metrics import InferenceMetrics
from sonobridge.inference.modules.common import MODELS_DIR
from sonobridge.inference.runtime.providers import SessionConfig
from sonobridge.inference.runtime.registry import LocalDirModelSource, ModelRegistry
from sonobridge.inference.runtime.server import ModelServer
from sonobridge.lab import hc18
from sonobridge.lab.fault_detectors import (
    BLOCKS,
    FALSE_RESCAN_BUDGET,
    L2,
    FaultDetector,
    choose_thresholds,
    detector_layers,
    fit_detector,
)
from sonobridge.lab.faults import DYNAMIC_RANGE_DB, InjectedFault, inject
from sonobridge.lab.training.datasets import QUALITY_CLASSES
from sonobridge.lab.training.graphs import FeatureConfig, MlpHead, classifier_model, feature_model
from sonobridge.lab.training.mlp import train_head

NAME = "image-quality"
BASE_VERSION = "1.0.0"
VERSION = "1.5.0"
COMMAND = "uv run --package sonobridge-lab python -m sonobridge.lab.adapt"
SEEDS = {"head": 7, "train_faults": 100, "eval_faults": 900_000}
# From 1.4.0 the input is 256x256: speckle is 1-3 px there, about what most real frames have
# natively, so blur and scanline features read it before the graph pools it to 128.
SPEC = InputSpec("image", 256, 256)
FEATURES = FeatureConfig(
    size=128, valley_shifts=(1, 2), line_pool=4, physics=True, sector=True, native=SPEC.width
)
# Clean acquisitions differ by a few dB of gain and by the side the probe marker is on; the
# head must learn that neither is a fault.
BENIGN_GAIN_DB = 3.0
# The placeholder device of rows whose source did not say; its frames still count per organ.
UNKNOWN_DEVICE = "unknown"


@dataclass(frozen=True)
class RealFrame:
    """One clean labelled real frame, decoded as serving decodes it."""

    file: str
    gray: np.ndarray
    group: str
    organ: str
    device: str


def benign_variant(gray: np.ndarray, seed: int) -> np.ndarray:
    """Return the frame mirrored (odd seeds) with its tissue gain moved by up to 3 dB."""
    rng = np.random.default_rng(seed)
    out = gray[:, ::-1] if seed % 2 else gray
    shift = 255.0 * float(rng.uniform(-BENIGN_GAIN_DB, BENIGN_GAIN_DB)) / DYNAMIC_RANGE_DB
    # Only lit pixels: the black frame around a sector stays black.
    moved = out.astype(np.float32) + shift * (out > 3)
    return np.clip(np.round(moved), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Sample:
    """A frame to train on or evaluate: a real frame, clean or with one injected fault."""

    frame: RealFrame
    fault: InjectedFault | None
    seed: int
    # Training samples start from a benign variant of the frame; evaluation ones never do.
    varied: bool = False

    def pixels(self) -> np.ndarray:
        """The frame's pixels with the fault applied."""
        base = benign_variant(self.frame.gray, self.seed) if self.varied else self.frame.gray
        if self.fault is None:
            return base
        return inject(base, self.fault, self.seed)

    @property
    def label(self) -> int:
        """The head's class: 0 when clean, else 1 + the fault's index (partial and full lost
        contact apart, since they look nothing alike)."""
        return 0 if self.fault is None else 1 + list(InjectedFault).index(self.fault)


def read_frames(folder: Path) -> list[RealFrame]:
    """Clean frames of a manifest folder (file, group, organ, device, quality_label columns)."""
    frames = []
    with open(folder / "manifest.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["quality_label"].strip() != "acceptable":
                continue
            decoded = decode_image((folder / row["file"]).read_bytes(), FrameSelection(0))
            frames.append(
                RealFrame(
                    row["file"],
                    decoded.frames[0],
                    row.get("group") or row["file"],
                    row.get("organ") or "other",
                    row.get("device") or UNKNOWN_DEVICE,
                )
            )
    return frames


def group_folds(frames: list[RealFrame], k: int) -> list[int]:
    """Assign each frame a fold so that a group (video or patient) is never in two folds."""
    sizes: dict[str, int] = {}
    for f in frames:
        sizes[f.group] = sizes.get(f.group, 0) + 1
    load = [0] * k
    fold_of: dict[str, int] = {}
    # Largest groups first into the emptiest fold: balanced folds, deterministic order.
    for group in sorted(sizes, key=lambda g: (-sizes[g], g)):
        fold = min(range(k), key=lambda i: (load[i], i))
        fold_of[group] = fold
        load[fold] += sizes[group]
    return [fold_of[f.group] for f in frames]


def _session(model_bytes: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def _features(session: ort.InferenceSession, images: Iterable[np.ndarray]) -> np.ndarray:
    # Frames differ in size: resize one at a time exactly as serving does.
    tensors = np.concatenate([to_tensor(img, SPEC) for img in images])
    out = [
        session.run(["features"], {SPEC.name: tensors[i : i + 64]})[0]
        for i in range(0, len(tensors), 64)
    ]
    return np.concatenate(out)


def training_samples(
    frames: list[RealFrame], seeds_per_fault: int, offset: int = 0
) -> list[Sample]:
    """Each clean frame, plus each fault with its seeds (never the evaluation seeds)."""
    samples = []
    for i, frame in enumerate(frames, start=offset):
        for s in range(seeds_per_fault):
            seed = SEEDS["train_faults"] + 1000 * i + s
            samples.append(Sample(frame, None, seed, varied=True))
            samples.extend(Sample(frame, fault, seed, varied=True) for fault in InjectedFault)
    return samples


def evaluation_samples(frames: list[RealFrame]) -> list[Sample]:
    """Each clean frame once, and once with every fault (seeds never used in training)."""
    samples = []
    for i, frame in enumerate(frames):
        samples.append(Sample(frame, None, 0))
        seed = SEEDS["eval_faults"] + i
        samples.extend(Sample(frame, fault, seed) for fault in InjectedFault)
    return samples


# The head tells every injected fault apart; the graph sums them into the served labels.
HEAD_CLASSES = ["acceptable", *[f.value for f in InjectedFault]]
MERGE = np.array(
    [
        [
            float(
                QUALITY_CLASSES[c] == (h if h == "acceptable" else InjectedFault(h).quality_label)
            )
            for c in range(len(QUALITY_CLASSES))
        ]
        for h in HEAD_CLASSES
    ]
)
# Every frame gives one clean and six faulty samples; clean ones count this much more so
# the head sees about as much clean real tissue as faulty.
CLEAN_WEIGHT = len(InjectedFault) + 1
HEAD = {"hidden": 16, "l2": 1e-2, "epochs": 300}
# Thresholds are chosen on out-of-fold scores of the training frames only (inner group-wise
# folds): every fault caught as often as possible while false rescans stay within the budget.
# Five inner folds (three up to 1.4.0) so that each inner model sees most of the outer
# fold's frames: with three, fold thresholds ranged 0.03-0.29.
INNER_FOLDS = 5
# Extra clean frames for training only, never scored: HC18 fetal heads (one Voluson device),
# one image per subject, subjects spread evenly and none that realus-dev holds.
EXTRA_SUBJECTS = 16
EXTRA_SEED_OFFSET = 1000


@dataclass(frozen=True)
class SampleFeatures:
    """Training samples of every real frame and their features, computed once for all folds."""

    samples: list[Sample]
    frame_index: np.ndarray
    feats: np.ndarray
    # Rows of extra frames: in every training set, never in a threshold's or figure's.
    extra: np.ndarray

    @classmethod
    def of(
        cls,
        frames: list[RealFrame],
        seeds_per_fault: int,
        keep: np.ndarray | None = None,
        extra_frames: Sequence[RealFrame] = (),
    ) -> SampleFeatures:
        """Inject every fault into every (kept) frame and extra frame; compute the features."""
        session = _session(feature_model(FEATURES).SerializeToString())
        samples, index, extra = [], [], []
        for i, frame in enumerate(frames):
            if keep is not None and not keep[i]:
                continue
            mine = training_samples([frame], seeds_per_fault, offset=i)
            samples.extend(mine)
            index.extend([i] * len(mine))
            extra.extend([False] * len(mine))
        for j, frame in enumerate(extra_frames):
            mine = training_samples([frame], seeds_per_fault, offset=EXTRA_SEED_OFFSET + j)
            samples.extend(mine)
            index.extend([0] * len(mine))
            extra.extend([True] * len(mine))
        feats = _features(session, (s.pixels() for s in samples))
        return cls(samples, np.array(index), feats, np.array(extra))

    def training_rows(self, keep: np.ndarray) -> np.ndarray:
        """Rows of the kept frames and of every extra frame."""
        return np.flatnonzero(self.extra | keep[self.frame_index])


def read_extra_frames(root: Path, frames: list[RealFrame]) -> list[RealFrame]:
    """HC18 frames of subjects the labelled frames lack, one per subject, as serving decodes."""
    taken = {f.group for f in frames}
    firsts: dict[int, hc18.Hc18Image] = {}
    for im in hc18.read_index(root):
        if f"hc18:{im.subject:03d}" not in taken:
            firsts.setdefault(im.subject, im)
    chosen = hc18.subset([firsts[s] for s in sorted(firsts)], EXTRA_SUBJECTS)
    return [
        RealFrame(
            im.filename,
            decode_image((root / "images" / im.filename).read_bytes(), FrameSelection(0)).frames[0],
            f"hc18:{im.subject:03d}",
            "fetal_head",
            "hc18",
        )
        for im in chosen
    ]


def fit_head(real: SampleFeatures, keep: np.ndarray) -> MlpHead:
    """Train the head on the kept frames' and the extra frames' samples, clean weighted up."""
    rows = real.training_rows(keep)
    labels = np.array([real.samples[r].label for r in rows])
    clean = rows[labels == 0]
    x = np.concatenate([real.feats[rows], np.repeat(real.feats[clean], CLEAN_WEIGHT - 1, axis=0)])
    y = np.concatenate([labels, np.zeros(len(clean) * (CLEAN_WEIGHT - 1), dtype=int)])
    return train_head(x, y, len(HEAD_CLASSES), SEEDS["head"], **HEAD)


def acceptable_probability(head: MlpHead, feats: np.ndarray) -> np.ndarray:
    """Return the head's probability of 'acceptable' (temperature 1, as the graph computes)."""
    z = head.logits(feats)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(z[:, 0] / z.sum(axis=1))


def choose_threshold(p_ok: np.ndarray, faults: list[InjectedFault | None]) -> float:
    """Return the threshold that catches the worst-caught fault best within the rescan budget."""
    return choose_thresholds(p_ok, np.zeros((len(p_ok), 0)), faults)[0]


def fit_detectors(real: SampleFeatures, keep: np.ndarray) -> list[FaultDetector]:
    """Fit each declared fault detector on the kept frames' and the extra frames' samples."""
    rows = real.training_rows(keep)
    faults = [real.samples[r].fault for r in rows]
    return [fit_detector(real.feats[rows], faults, fault) for fault in BLOCKS]


@dataclass(frozen=True)
class FittedModel:
    """A fitted version: its ONNX bytes, the head's threshold and each detector's."""

    model: bytes
    threshold: float
    detector_thresholds: dict[str, float]


def fit_model(frames: list[RealFrame], real: SampleFeatures, keep: np.ndarray) -> FittedModel:
    """Train on the kept frames and choose every threshold on their own inner folds.

    No labelled frame outside `keep` is looked at; extra frames only ever train.
    """
    kept = np.flatnonzero(keep)
    inner = np.full(len(frames), -1)
    inner[kept] = group_folds([frames[i] for i in kept], INNER_FOLDS)
    p_ok, q_clean, faults = [], [], []
    for j in range(INNER_FOLDS):
        rows = np.flatnonzero((inner[real.frame_index] == j) & ~real.extra)
        if rows.size == 0:
            continue
        train = keep & (inner != j)
        head = fit_head(real, train)
        p_ok.append(acceptable_probability(head, real.feats[rows]))
        q_clean.append(
            np.stack([d.clean_probability(real.feats[rows]) for d in fit_detectors(real, train)], 1)
        )
        faults.extend(real.samples[r].fault for r in rows)
    threshold, taus = choose_thresholds(np.concatenate(p_ok), np.concatenate(q_clean), faults)
    head = fit_head(real, keep)
    # Temperature 1: the threshold is chosen on out-of-fold scores, not recalibrated.
    model = classifier_model(
        FEATURES,
        head,
        {"temperature": 1.0},
        "softmax",
        doc="SonoBridge image-quality adapted to real frames; reference model, not clinical",
        merge=MERGE,
        post=detector_layers(fit_detectors(real, keep), taus, threshold),
    )
    named = {fault.value: tau for fault, tau in zip(BLOCKS, taus, strict=True)}
    return FittedModel(model.SerializeToString(), threshold, named)


def write_version(root: Path, card: dict, model_bytes: bytes) -> Path:
    """Write model.onnx and card.json under root/{name}/{version}/."""
    target = root / card["name"] / card["version"]
    target.mkdir(parents=True, exist_ok=True)
    (target / "model.onnx").write_bytes(model_bytes)
    card["sha256"] = hashlib.sha256(model_bytes).hexdigest()
    card["size_bytes"] = len(model_bytes)
    (target / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return target


def _png(gray: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="PNG")
    return buf.getvalue()


def serving_flags(models_root: Path, version: str, samples: list[Sample]) -> list[bool]:
    """Whether serving's validation report flags each sample, with that version pinned.

    models_root holds `models/{name}/{version}/`, as the registry's local source reads it.
    """
    metrics = InferenceMetrics(CollectorRegistry())
    server = ModelServer(
        ModelRegistry(LocalDirModelSource(models_root), SessionConfig(), metrics=metrics)
    )
    flags = []
    try:
        server.load_and_pin([(NAME, version)])
        with tempfile.TemporaryDirectory(prefix="sonobridge-adapt-") as scratch:
            deps = Dependencies(
                models=server,
                store=LocalDirObjectStore(Path(scratch)),
                metrics=metrics,
                clock=lambda: datetime.now(UTC),
                exam_work=_no_exams,
            )
            device = DeviceModel.of("labelled", "frames")
            for s in samples:
                fault = None if s.fault is None else s.fault.value
                frame = LabelledFrame(s.frame.file, _png(s.pixels()), fault)
                report = report_validation(deps, NAME, device, [frame])
                rate = report["false_rescan_rate"] if fault is None else report["fault_catch_rate"]
                flags.append(rate > 0.5)
    finally:
        server.close()
    return flags


def _no_exams(_transaction: object) -> object:
    raise RuntimeError("adapt runs no exams")


def figures(samples: list[Sample], flags: list[bool]) -> dict:
    """False rescans on clean frames and catch rate per fault, overall, per device and organ."""

    def rates(pairs: list[tuple[Sample, bool]]) -> dict:
        clean = [f for s, f in pairs if s.fault is None]
        per_fault: dict[str, list[bool]] = {}
        for s, f in pairs:
            if s.fault is not None:
                per_fault.setdefault(s.fault.value, []).append(f)
        return {
            "n_clean": len(clean),
            "false_rescan_rate": sum(clean) / len(clean) if clean else None,
            "catch_rate_per_fault": {k: sum(v) / len(v) for k, v in sorted(per_fault.items())},
        }

    pairs = list(zip(samples, flags, strict=True))
    by: dict[str, dict] = {}
    for key in ("device", "organ"):
        values = sorted({getattr(s.frame, key) for s in samples})
        by[key] = {v: rates([p for p in pairs if getattr(p[0].frame, key) == v]) for v in values}
    return {"all": rates(pairs), "per_device_model": by["device"], "per_organ": by["organ"]}


def flag_counts(samples: list[Sample], flags: list[bool]) -> dict[str, int]:
    """Flagged samples per fault ("clean" for false rescans), as a fold's record keeps them."""
    counts = {"clean": 0, **{f.value: 0 for f in InjectedFault}}
    for s, flagged in zip(samples, flags, strict=True):
        counts["clean" if s.fault is None else s.fault.value] += int(flagged)
    return counts


def fold_test(frames: list[RealFrame], folds: int, k: int) -> tuple[np.ndarray, list[Sample]]:
    """Return which frames fold k trains on and its evaluation samples (held-out groups)."""
    fold_of = np.array(group_folds(frames, folds))
    test = [f for f, fold in zip(frames, fold_of, strict=True) if fold == k]
    return fold_of != k, evaluation_samples(test)


def cross_validate(
    frames: list[RealFrame], real: SampleFeatures, folds: int
) -> tuple[list[Sample], list[bool], list[dict]]:
    """Group-wise CV: each fold's model scores its held-out groups through the serving path.

    Returns every evaluation sample, its flag and one record per fold (thresholds, counts).
    """
    all_samples: list[Sample] = []
    all_flags: list[bool] = []
    records: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="sonobridge-adapt-cv-") as tmp:
        root = Path(tmp)
        for k in range(folds):
            keep, samples = fold_test(frames, folds, k)
            if not samples:
                continue
            record, flags = score_fold(root, frames, real, keep, samples, k)
            all_samples.extend(samples)
            all_flags.extend(flags)
            records.append(record)
    return all_samples, all_flags, records


def score_fold(
    root: Path,
    frames: list[RealFrame],
    real: SampleFeatures,
    keep: np.ndarray,
    samples: list[Sample],
    k: int,
) -> tuple[dict, list[bool]]:
    """Fit fold k's model on the kept frames, register it under root and flag its samples.

    Returns the fold's record (thresholds, flagged counts) and each sample's flag.
    """
    fitted = fit_model(frames, real, keep)
    card = _card(fitted.threshold, model_bytes_note=f"fold {k}")
    card["version"] = f"0.0.{k}"
    write_version(root / "models", card, fitted.model)
    flags = serving_flags(root, card["version"], samples)
    record = {
        "fold": k,
        "threshold": fitted.threshold,
        "detector_thresholds": fitted.detector_thresholds,
        **flag_counts(samples, flags),
    }
    return record, flags


def _base_card() -> dict:
    return json.loads((MODELS_DIR / NAME / BASE_VERSION / "card.json").read_text())


def _card(threshold: float, model_bytes_note: str = "") -> dict:
    card = copy.deepcopy(_base_card())
    card["version"] = VERSION
    card["input"]["shape"] = ["N", 1, SPEC.height, SPEC.width]
    card["input"]["preprocessing"]["resize"] = (
        f"whole frame to {SPEC.width}x{SPEC.height} with Pillow bilinear (aspect ratio not kept, "
        "no crop)"
    )
    card["thresholds"]["rescan_if_acceptable_below"] = threshold
    card["calibration"] = {
        "method": "none (temperature 1); the rescan threshold is chosen on inner group-wise "
        f"folds of the training frames (false-rescan budget {FALSE_RESCAN_BUDGET})"
        + (f" ({model_bytes_note})" if model_bytes_note else ""),
        "temperature": 1.0,
    }
    # No device model is validated for a new version until its own report says so.
    card["validation"]["validated_device_models"] = []
    card["registration"] = {
        "stage": "shadow",
        "beside": BASE_VERSION,
        "about": "registered beside the serving version; the registry never picks a shadow "
        "version unless asked for it by number",
    }
    for key in ("sha256", "size_bytes"):
        card.pop(key, None)
    # Filled with the group-wise CV figures once they exist: real frames are the held-out set.
    card["held_out"] = {"recipe": {"folder": "", "method": "group-wise cross-validation"}}
    return card


def adapt(
    frames_dir: Path,
    out: Path,
    folds: int = 10,
    seeds_per_fault: int = 4,
    extra_clean: Path = hc18.DEFAULT_ROOT,
) -> dict:
    """Cross-validate, fit on every frame, write the version's card and model; return the card."""
    t0 = time.time()
    frames = read_frames(frames_dir)
    extra = read_extra_frames(extra_clean, frames)
    real = SampleFeatures.of(frames, seeds_per_fault, extra_frames=extra)
    samples, flags, fold_records = cross_validate(frames, real, folds)
    everything = np.ones(len(frames), dtype=bool)
    fitted = fit_model(frames, real, everything)
    card = _card(fitted.threshold)
    card["detectors"] = detectors_card(fitted)
    sources = sorted({f.frame.file.split("/")[1] for f in samples if "/" in f.frame.file})
    card["training_data"] = {
        "description": "Clean labelled real frames of the folder plus each injected fault "
        "(sonobridge.lab.faults, seeds per fault below), each on a benign variant of the frame "
        f"(mirrored on odd seeds, tissue gain within +-{BENIGN_GAIN_DB} dB).",
        "real_frames": {
            "folder": frames_dir.name,
            "n_clean": len(frames),
            "n_groups": len({f.group for f in frames}),
            "sources": sources,
            "seeds_per_fault": seeds_per_fault,
            "credit": "realus-dev: POCUS lung (Born et al.), BUSI breast (Al-Dhabyani et al. "
            "2020, CC0), common carotid (Momot, Mendeley Data, CC BY 4.0), HC18 (van den Heuvel "
            "et al. 2018, CC BY 4.0), ITKPOCUS (Apache-2.0), pydicom examples (MIT); "
            "licences per frame in its manifest",
        },
        "extra_clean_frames": {
            "folder": extra_clean.name,
            "use": "training only (every fold's head and detectors), never a threshold or a "
            "figure; one image per subject, subjects realus-dev lacks, spread evenly",
            "files": [f.file for f in extra],
        },
        "counts": {"real": len(real.samples), "clean_weight": CLEAN_WEIGHT},
    }
    card["cross_validation"] = {
        "method": f"{folds}-fold group-wise (a group = one video or patient is never in two "
        "folds); each fold's model scored through serving's validation report",
        "faults_injected": [f.value for f in InjectedFault],
        "n_folds": folds,
        "seeds_per_fault": seeds_per_fault,
        "folds": fold_records,
        "figures": figures(samples, flags),
        "note": "development figures on realus-dev; held-back cases are not here",
    }
    card["held_out"] = {
        "recipe": {"folder": frames_dir.name, "method": "group-wise cross-validation"},
        "metrics": card["cross_validation"]["figures"]["all"],
    }
    card["intended_use"] = (
        "Candidate image-quality model adapted to real frames; runs in shadow beside the "
        "serving version until a device model's validation report promotes it."
    )
    card["training_command"] = f"{COMMAND} --frames {frames_dir.name} --out MODELS_DIR"
    card["model"]["head_seed"] = SEEDS["head"]
    card["model"]["head"] = HEAD
    card["model"]["architecture"] = (
        f"fixed ONNX feature layers on the {SPEC.width}x{SPEC.height} input (speckle "
        "saturation per direction and distance, sharpness and curvature anisotropy at three "
        "scales, sorted per-scanline contact near the face and deep down) and on it pooled to "
        f"{FEATURES.size}x{FEATURES.size} (intensity grid, texture, gradients, oriented "
        "dark-line filters, gain-invariant physics, sector-relative gain, directional blur, "
        f"deep-band contact and sector-depth features) + MLP {HEAD['hidden']} ReLU over "
        f"{len(HEAD_CLASSES)} classes (each injected fault its own), summed into the served "
        "labels; logistic detectors of motion blur and partial lost contact on declared feature "
        "blocks are OR-ed in where the inner folds switched them on (see detectors)"
    )
    card["training_seconds"] = round(time.time() - t0, 1)
    write_version(out, card, fitted.model)
    return card


def detectors_card(fitted: FittedModel) -> dict:
    """The card's account of the detectors OR-ed with the head and how each part was chosen."""
    return {
        "rule": "rescan when the head's acceptable probability is below its threshold OR a "
        "detector's probability of clean is below its own; the graph lowers the served "
        "'acceptable' to min(p_ok, q_k * threshold / tau_k), so serving's one threshold applies, "
        "and moves the lowered share to the detector's fault class",
        "detectors": {
            fault.value: {
                "feature_blocks": list(blocks),
                "model": f"logistic, one fault against clean, classes weighted equal, L2 {L2}",
                "threshold_on_clean_probability": fitted.detector_thresholds[fault.value],
            }
            for fault, blocks in BLOCKS.items()
        },
        "chosen_how": "feature blocks, L2, threshold grids, inner folds "
        f"({INNER_FOLDS}) and the extra clean frames were fixed before any cross-validated "
        "figure of this version was seen; the head's and detectors' thresholds are chosen "
        "jointly on inner group-wise folds of the training frames only (a detector's threshold "
        "may be 0, i.e. off)",
    }


def frames_parser(description: str | None, folds: int) -> argparse.ArgumentParser:
    """Return the arguments every command on a labelled-frames folder takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--frames", type=Path, required=True, help="folder with manifest.csv")
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="models/ root to register in")
    parser.add_argument("--folds", type=int, default=folds)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run adapt and print the cross-validated figures."""
    parser = frames_parser(__doc__, folds=10)
    parser.add_argument("--seeds-per-fault", type=int, default=4)
    parser.add_argument(
        "--extra-clean", type=Path, default=hc18.DEFAULT_ROOT, help="HC18 folder, training only"
    )
    args = parser.parse_args(argv)
    card = adapt(args.frames, args.out, args.folds, args.seeds_per_fault, args.extra_clean)
    overall = card["cross_validation"]["figures"]["all"]
    print(
        f"{NAME} {VERSION} (shadow) in {card['training_seconds']}s, threshold "
        f"{card['thresholds']['rescan_if_acceptable_below']}: CV false rescans "
        f"{overall['false_rescan_rate']:.3f}, catch {overall['catch_rate_per_fault']}"
    )


if __name__ == "__main__":
    main()
