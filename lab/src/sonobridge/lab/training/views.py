"""Train the view check (which anatomy a frame shows) on generator plus real frames, with its card.

`uv run --package sonobridge-lab python -m sonobridge.lab.training.views`
`    [--realus ../shared/datasets/realus-dev] [--hc18 ../shared/datasets/hc18] [--out MODELS_DIR]`
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from sonobridge.inference.domain.views import MODULE_ANATOMY
from sonobridge.inference.imaging.preprocess import InputSpec, to_tensor
from sonobridge.inference.modules.common import MODELS_DIR
from sonobridge.lab.adapt import group_folds, read_frames
from sonobridge.lab.evaluation import multiclass_metrics
from sonobridge.lab.hc18 import DEFAULT_ROOT as HC18_ROOT
from sonobridge.lab.hc18 import read_index
from sonobridge.lab.synthetic import GENERATOR_VERSION, AcquisitionSpec, Fault, generate_frame
from sonobridge.lab.training.folds import stratified_group_folds
from sonobridge.lab.training.graphs import FeatureConfig, classifier_model, feature_model
from sonobridge.lab.training.mlp import fit_temperature, train_head
from sonobridge.lab.training.references import ReferenceSet, nearest_agrees, with_references
from sonobridge.lab.training.view_evidence import UNGATED, manifest_spacing, module_evidence

NAME = "view-check"
VERSION = "1.1.0"
COMMAND = "uv run --package sonobridge-lab python -m sonobridge.lab.training.views"
REALUS_ROOT = HC18_ROOT.parent / "realus-dev"
VIEWS = [
    "kidney",
    "thyroid",
    "carotid-long",
    "carotid-transverse",
    "liver",
    "fetal-head",
    "heart",
    "lung",
    "breast",
    "other",
]
# The generator's scenes and what view they are. Its "abdomen" and "liver" scenes draw the same
# parenchyma, so both teach "liver"; its "cardiac" scene has no chambers or valves, so it
# teaches "other", never "heart".
SYNTHETIC_VIEWS = {
    "kidney": "kidney",
    "thyroid": "thyroid",
    "carotid": "carotid-long",
    "liver": "liver",
    "abdomen": "liver",
    "cardiac": "other",
}
# realus-dev's organ column; its HC18 rows say "other" but are trans-thalamic fetal heads.
REAL_VIEWS = {"lung": "lung", "breast": "breast", "carotid": "carotid-long", "other": "other"}
HC18_SOURCE = "frames/hc18_fetal/"
# Faults under which the anatomy is still on screen; lost contact shows none, so it is left out.
VISIBLE_FAULTS = (Fault.LOW_GAIN, Fault.DEAD_ELEMENTS, Fault.MOTION_BLUR, Fault.WRONG_DEPTH)
SEEDS = {"train": 31, "held_out": 32, "head": 7, "augment": 33, "folds": 34}
SPEC = InputSpec("image", 128, 128)
IMAGE_FEATURES = FeatureConfig(size=128, valley_shifts=(1, 2), line_pool=4)
# Feature sets the nested CV's inner folds choose between, in order of preference on a tie:
# the image layers, and the same plus gain-invariant physics (each frame judged against its
# own lit area and mean), so that a darker device or preset looks less like another organ.
FEATURE_SETS = {"image": IMAGE_FEATURES, "image+physics": replace(IMAGE_FEATURES, physics=True)}
SERVED_FEATURES = "image"
FEATURES = FEATURE_SETS[SERVED_FEATURES]
# How the card's (not nested) cross-validation splits real frames: see SPLIT_RULES.
CV_SPLIT = "grouped"
PER_SCENE = {"train": 160, "held_out": 40}
HC18_FRAMES = 120
# Real views have few frames next to the generator's; each real frame is seen this often
# (mirrored and with gain jitter) so that real tissue weighs as much as the generator's.
REAL_COPIES = 6
FOLDS = 5
# Whether every view weighs the same in the head's loss: real fetal heads (HC18) outnumber every
# other real view about six to one, so unweighted, an unfamiliar real frame leans fetal-head.
CLASS_BALANCED = False
MIN_CONFIDENCE = 0.5
# Principal components the reference frames are kept in: enough for the nearest frame to be
# the one in all features, few enough that every training frame fits in the model.
REFERENCE_DIMS = 32
# Confidence floors the card tabulates: out of fold, wrong views are confident, so a floor
# alone does not remove them.
FLOORS = (0.5, 0.7, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class ViewFrame:
    """A frame with its view and its group (a video, patient or generator scene)."""

    gray: np.ndarray
    view: int
    group: str
    real: bool
    # realus-dev frames form the real exams the wrong-anatomy figure counts.
    exam: bool = False
    # Clinical modules whose own evidence gate sees their anatomy in the frame (serving's
    # gates, thresholds fixed without realus-dev); modules without a gate are always in.
    evidence: frozenset[str] = UNGATED


Split = Callable[[list[ViewFrame], int], list[int]]


def grouped_folds(frames: list[ViewFrame], k: int) -> list[int]:
    """Group folds balanced by frames only (1.1.0's split; blind to classes)."""
    return group_folds(frames, k)  # type: ignore[arg-type]


def stratified_folds(frames: list[ViewFrame], k: int) -> list[int]:
    """Stratified group folds with the stated seed (the protocol since 1.2.0)."""
    return stratified_group_folds(
        [f.group for f in frames], [f.view for f in frames], k, SEEDS["folds"]
    )


SPLITS: dict[str, Split] = {"grouped": grouped_folds, "stratified": stratified_folds}
SPLIT_RULES = {
    "grouped": "largest groups first into the fold with the fewest frames (a group never in "
    "two folds; classes ignored)",
    "stratified": "stratified group folds, decided before any figure under it was seen: a "
    "group never in two folds; classes with the fewest groups are placed first; each class's "
    f"groups, in an order drawn with seed {SEEDS['folds']}, go to the fold with the fewest "
    "groups of that class, then the fewest frames, then the lowest index; so every training "
    "set (outer, and inner wherever the outer training set still has two groups of the class) "
    "holds each class that has two or more groups (cf. scikit-learn's StratifiedGroupKFold)",
}


def synthetic_frames(split: str) -> list[ViewFrame]:
    """Generator frames of every scene, labelled with the view each scene shows; a third of
    them with a fault that leaves the anatomy visible, so that a poor frame keeps its view."""
    seed = SEEDS[split]
    frames = []
    for k, (scene, view) in enumerate(SYNTHETIC_VIEWS.items()):
        for i in range(PER_SCENE[split]):
            faults = (
                frozenset({VISIBLE_FAULTS[i // 3 % len(VISIBLE_FAULTS)]}) if i % 3 == 2 else None
            )
            spec = AcquisitionSpec(exam_type=scene, faults=faults or frozenset())
            image = generate_frame(seed * 1_000_003 + k * 10_000 + i, spec).image
            frames.append(ViewFrame(image, VIEWS.index(view), f"synthetic:{split}", False))
    return frames


def real_frames(realus: Path, hc18: Path) -> list[ViewFrame]:
    """realus-dev's clean frames and an even subset of HC18 heads, grouped by patient/video."""
    frames = []
    spacing = manifest_spacing(realus)
    for f in read_frames(realus):
        view = "fetal-head" if f.file.startswith(HC18_SOURCE) else REAL_VIEWS.get(f.organ, "other")
        shown = module_evidence(f.gray, spacing[f.file])
        frames.append(ViewFrame(f.gray, VIEWS.index(view), f.group, True, True, shown))
    index = read_index(hc18)
    for i in np.linspace(0, len(index) - 1, HC18_FRAMES).round().astype(int):
        im = index[int(i)]
        gray = im.pixels(hc18)
        shown = module_evidence(gray, (im.pixel_mm, im.pixel_mm))
        # Same group key as realus-dev's HC18 rows: one subject never spans two folds.
        frames.append(
            ViewFrame(gray, VIEWS.index("fetal-head"), f"hc18:{im.subject:03d}", True, False, shown)
        )
    return frames


def _augment(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = gray[:, ::-1] if rng.random() < 0.5 else gray
    gain = float(rng.uniform(0.75, 1.3))
    return np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def _session(model_bytes: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def features(session: ort.InferenceSession, images: list[np.ndarray]) -> np.ndarray:
    """Run the feature graph on frames preprocessed exactly as serving does."""
    tensors = np.concatenate([to_tensor(img, SPEC) for img in images])
    out = [
        session.run(["features"], {SPEC.name: tensors[i : i + 64]})[0]
        for i in range(0, len(tensors), 64)
    ]
    return np.concatenate(out)


@dataclass
class Featured:
    """Frames with their features (real frames also with augmented copies' features)."""

    frames: list[ViewFrame]
    feats: np.ndarray
    copies: list[np.ndarray]

    @classmethod
    def of(cls, session: ort.InferenceSession, frames: list[ViewFrame]) -> Featured:
        """Compute features of each frame and of REAL_COPIES augmented copies of real ones."""
        rng = np.random.default_rng(SEEDS["augment"])
        feats = features(session, [f.gray for f in frames])
        copies = [
            features(session, [_augment(f.gray, rng) for _ in range(REAL_COPIES)])
            if f.real
            else np.zeros((0, feats.shape[1]), dtype=feats.dtype)
            for f in frames
        ]
        return cls(frames, feats, copies)

    def training(self, chosen: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Features and labels of the chosen frames, real ones with their augmented copies."""
        xs, ys = [], []
        for i in chosen:
            xs.append(self.feats[i : i + 1])
            xs.append(self.copies[i])
            ys += [self.frames[i].view] * (1 + len(self.copies[i]))
        return np.concatenate(xs), np.array(ys)


def fit(
    session_feats: Featured, chosen: list[int], balanced: bool = CLASS_BALANCED
) -> tuple[Any, float, ReferenceSet]:
    """Fit the head on the chosen frames; temperature on the same (no spare real frames); keep
    the same frames as references."""
    x, y = session_feats.training(chosen)
    weights = class_balanced(y) if balanced else None
    head = train_head(x, y, len(VIEWS), SEEDS["head"], hidden=32, epochs=800, weights=weights)
    real = np.concatenate(
        [[session_feats.frames[i].real] * (1 + len(session_feats.copies[i])) for i in chosen]
    )
    refs = ReferenceSet.of(x, y, real, len(VIEWS), REFERENCE_DIMS)
    return head, fit_temperature(head.logits(x), y), refs


def class_balanced(labels: np.ndarray) -> np.ndarray:
    """Row weights under which every present view weighs the same in the loss (each row
    n / (views * rows of its view), scikit-learn's "balanced")."""
    views, counts = np.unique(labels, return_counts=True)
    per_view = dict(
        zip(views.tolist(), (len(labels) / (len(views) * counts)).tolist(), strict=True)
    )
    return np.array([per_view[int(v)] for v in labels])


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def confusion(true: np.ndarray, pred: np.ndarray) -> dict[str, dict[str, int]]:
    """Rows: labelled view; columns: predicted view; only views that occur in either."""
    seen = sorted(set(true.tolist()) | set(pred.tolist()))
    return {
        VIEWS[t]: {VIEWS[p]: int(((true == t) & (pred == p)).sum()) for p in seen} for t in seen
    }


def served_view(
    probs: np.ndarray, distances: np.ndarray | None = None, floor: float = MIN_CONFIDENCE
) -> np.ndarray:
    """The view serving acts on: the top view, or "other" when unsure, not claimed or (given
    reference distances) when the nearest training frame is a real frame of another view."""
    top = probs.argmax(axis=1)
    unsure = probs.max(axis=1) < floor
    unclaimed = np.isin(top, [VIEWS.index(v) for v in UNCLAIMED])
    if distances is not None:
        unsure |= ~nearest_agrees(probs, distances)
    return np.where(unsure | unclaimed, VIEWS.index("other"), top)


# No frame of these views is in the training set: the model cannot see them.
UNCLAIMED = ("carotid-transverse", "heart")


def _modules(view: int) -> set[str]:
    return {name for name, views in MODULE_ANATOMY.items() if VIEWS[view] in views}


def _routed_wrong(true: int, pred: int) -> bool:
    """Whether a frame of view `true` seen as `pred` would reach a module of another anatomy."""
    return bool(_modules(pred) - _modules(true))


def _found_wrong(frame: ViewFrame, true: int, pred: int, gated: bool) -> bool:
    """Whether a module of another anatomy would report on the frame: it is routed there and
    (gated) that module's own evidence gate also sees its anatomy in it."""
    others = _modules(pred) - _modules(true)
    return bool(others & frame.evidence) if gated else bool(others)


def _kept_from_own(frame: ViewFrame, true: int, pred: int, gated: bool) -> bool:
    """Whether a frame of a view with a module is not measured by it: routed elsewhere, or
    (gated) its module's own evidence gate does not see its anatomy."""
    return pred != true or (gated and not _modules(true) <= frame.evidence)


def cross_validate(data: Featured, synthetic: list[int], real: list[int]) -> dict[str, Any]:
    """Group-wise CV over real frames (a video/patient never in two folds); generator always in."""
    real_frames_ = [data.frames[i] for i in real]
    folds = SPLITS[CV_SPLIT](real_frames_, FOLDS)
    probs, distances = _out_of_fold(data, synthetic, real, folds)
    true = np.array([f.view for f in real_frames_])
    pred = served_view(probs, distances)
    figures = _served_figures(real_frames_, true, pred)
    return {
        "method": f"{FOLDS}-fold group-wise CV over real frames: a video or patient (HC18 "
        "subject) is never in two folds; every fold also trains on the generator frames",
        "split": {"name": CV_SPLIT, "rule": SPLIT_RULES[CV_SPLIT]},
        "frames": len(real),
        "groups": figures.pop("groups"),
        "accuracy_served_view": figures.pop("accuracy_served_view"),
        "confusion_matrix": figures.pop("confusion_matrix"),
        "confusion_matrix_about": "rows: labelled view; columns: the view serving acts on "
        f"(top view, or 'other' below confidence {MIN_CONFIDENCE}, when not claimed or when "
        "the nearest training frame is a real frame of another view)",
        "real_exams": figures.pop("real_exams"),
        "abstention": {
            "about": "realus-dev exams with a frame routed to another anatomy's module, and "
            "frames of a view with a module kept from it, for each confidence floor, without "
            "and with the nearest-reference rule (out of fold)",
            "rows": [
                {
                    "min_confidence": floor,
                    "nearest_reference": rule,
                    **_routing(real_frames_, true, served_view(probs, d, floor)),
                }
                for floor in FLOORS
                for rule, d in ((False, None), (True, distances))
            ],
        },
        **figures,
    }


def _served_figures(frames: list[ViewFrame], true: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    groups = sorted({f.group for f in frames})
    wrong = [
        (f.group, VIEWS[p])
        for f, t, p in zip(frames, true, pred, strict=True)
        if _routed_wrong(int(t), int(p))
    ]
    return {
        "groups": len(groups),
        "accuracy_served_view": round(float((pred == true).mean()), 4),
        "confusion_matrix": confusion(true, pred),
        "real_exams": exam_figures(frames, true, pred),
        "routed_to_another_anatomy": {
            "about": "frames whose out-of-fold view would let a module of another anatomy "
            "measure them (a wrong-anatomy finding waiting to happen), and their groups",
            "frames": len(wrong),
            "groups": len({g for g, _ in wrong}),
            "of_groups": len(groups),
            "cases": sorted({f"{g} -> {v}" for g, v in wrong}),
        },
        "per_view_recall": {
            VIEWS[t]: round(float((pred[true == t] == t).mean()), 4) for t in sorted(set(true))
        },
    }


@dataclass(frozen=True)
class Choice:
    """What inner folds pick: a feature set and a confidence floor (the reference rule on)."""

    features: str
    floor: float


@dataclass
class Selection:
    """Out-of-fold probabilities and reference distances of each feature set over some real
    frames, and the routing figures of every choice."""

    folds: list[int]
    scores: dict[str, tuple[np.ndarray, np.ndarray]]
    table: dict[Choice, dict[str, int]]

    @property
    def best(self) -> Choice:
        """Fewest wrong-anatomy exams, then fewest frames kept from their module, then the
        earlier feature set and the lower floor."""
        order = list(self.table)
        return min(
            order,
            key=lambda c: (
                self.table[c]["wrong_anatomy_exams"],
                self.table[c]["frames_kept_from_their_module"],
                order.index(c),
            ),
        )


def _out_of_fold(
    data: Featured,
    synthetic: list[int],
    real: list[int],
    folds: list[int],
    balanced: bool = CLASS_BALANCED,
) -> tuple[np.ndarray, np.ndarray]:
    probs = np.zeros((len(real), len(VIEWS)))
    distances = np.zeros((len(real), len(VIEWS) + 1))
    for k in range(max(folds) + 1):
        train = synthetic + [i for i, f in zip(real, folds, strict=True) if f != k]
        head, temp, refs = fit(data, train, balanced)
        test = [j for j, f in enumerate(folds) if f == k]
        feats = data.feats[[real[j] for j in test]]
        probs[test] = _softmax(head.logits(feats) / temp)
        distances[test] = refs.distances(feats)
    return probs, distances


def select(
    featured: dict[str, Featured],
    synthetic: list[int],
    real: list[int],
    k: int,
    split: Split = grouped_folds,
    balanced: bool = CLASS_BALANCED,
) -> Selection:
    """k-fold group-wise CV of every feature set over the given real frames (the generator
    always trains), scored for every confidence floor."""
    frames = [next(iter(featured.values())).frames[i] for i in real]
    folds = split(frames, k)
    true = np.array([f.view for f in frames])
    scores = {
        name: _out_of_fold(data, synthetic, real, folds, balanced)
        for name, data in featured.items()
    }
    table = {
        Choice(name, floor): _routing(frames, true, served_view(probs, distances, floor))
        for name, (probs, distances) in scores.items()
        for floor in FLOORS
    }
    return Selection(folds, scores, table)


def nested_cross_validate(
    featured: dict[str, Featured],
    synthetic: list[int],
    real: list[int],
    split: str = "grouped",
    balanced: bool = CLASS_BALANCED,
) -> dict[str, Any]:
    """Nested group-wise CV over real frames (a video/patient never in two folds): inner folds
    of each outer training set pick the feature set and floor, the outer fold scores that
    pick. The figures say whether choosing the floor and features on real frames would meet
    the wrong-anatomy target out of fold, and what the same selection would ship."""
    top = select(featured, synthetic, real, FOLDS, SPLITS[split], balanced)
    frames = [next(iter(featured.values())).frames[i] for i in real]
    true = np.array([f.view for f in frames])
    pred = np.zeros(len(real), dtype=int)
    picks = []
    for k in range(FOLDS):
        inner = [i for i, f in zip(real, top.folds, strict=True) if f != k]
        pick = select(featured, synthetic, inner, FOLDS - 1, SPLITS[split], balanced).best
        test = np.flatnonzero(np.array(top.folds) == k)
        probs, distances = top.scores[pick.features]
        pred[test] = served_view(probs[test], distances[test], pick.floor)
        picks.append(pick)
    shipped = top.best
    return {
        "method": f"nested {FOLDS}-fold group-wise CV over real frames: a video or patient "
        "(HC18 subject) is never in two folds; every fold also trains on the generator frames; "
        f"{FOLDS - 1}-fold group-wise CV inside each outer training set picks the feature set "
        "and confidence floor (with the nearest-reference rule) that the outer fold is scored "
        "with",
        "split": {"name": split, "rule": SPLIT_RULES[split], "outer_and_inner": True},
        "class_balanced": balanced,
        "frames": len(real),
        **_served_figures(frames, true, pred),
        "selection": {
            "about": "every choice scored by the outer folds without nesting (the best of them "
            "is what the selection would ship); each outer fold was scored with its inner "
            "folds' pick",
            "order": "fewest wrong-anatomy exams, then fewest frames kept from their module, "
            "then the earlier feature set and the lower floor",
            "rows": [
                {"features": c.features, "min_confidence": c.floor, **figures}
                for c, figures in top.table.items()
            ],
            "inner_picks": [{"features": p.features, "min_confidence": p.floor} for p in picks],
            "would_ship": {"features": shipped.features, "min_confidence": shipped.floor},
        },
    }


def _routing(frames: list[ViewFrame], true: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    figures = exam_figures(frames, true, pred)
    return {k: figures[k] for k in ("wrong_anatomy_exams", "frames_kept_from_their_module")}


def exam_figures(frames: list[ViewFrame], true: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Per realus-dev exam (one group): does any frame reach a module of another anatomy, and
    how many frames of a view with a module are kept from it (correct findings lost)."""
    exams = sorted({f.group for f in frames if f.exam})
    rows = [(f, int(t), int(p)) for f, t, p in zip(frames, true, pred, strict=True)]
    with_module = [(f, t, p) for f, t, p in rows if _modules(t)]

    def counted(gated: bool) -> tuple[list[str], list[str]]:
        wrong = sorted({f.group for f, t, p in rows if f.exam and _found_wrong(f, t, p, gated)})
        lost = [f.group for f, t, p in with_module if _kept_from_own(f, t, p, gated)]
        return wrong, lost

    wrong, lost = counted(gated=True)
    routed, routed_lost = counted(gated=False)
    return {
        "about": "each realus-dev group is one exam; it counts as wrong when any of its frames, "
        "out of fold, would reach a clinical module of another anatomy whose own evidence "
        "gate (carotid: a lumen between two walls; fetal head: an elliptic head on a skull "
        "ring; thresholds fixed on the generator and HC18's training heads, not on these "
        "frames) also sees its anatomy there; a frame of a view with a module is kept from it "
        "when routed elsewhere or when its module's gate does not see it",
        "exams": len(exams),
        "wrong_anatomy_exams": len(wrong),
        "wrong_anatomy_rate": round(len(wrong) / max(len(exams), 1), 4),
        "wrong_cases": wrong,
        "frames_with_a_module": len(with_module),
        "frames_kept_from_their_module": len(lost),
        "kept_from_their_module": sorted(set(lost)),
        "without_module_evidence_gates": {
            "about": "the same out-of-fold views with the view check alone (an exam is wrong "
            "when any frame reaches a module of another anatomy)",
            "wrong_anatomy_exams": len(routed),
            "wrong_cases": routed,
            "frames_kept_from_their_module": len(routed_lost),
        },
    }


def _featured(realus: Path, hc18: Path) -> tuple[Featured, list[int], list[int]]:
    session = _session(feature_model(FEATURES, SPEC.name).SerializeToString())
    train_syn = synthetic_frames("train")
    data = Featured.of(session, train_syn + real_frames(realus, hc18))
    n = len(train_syn)
    return data, list(range(n)), list(range(n, len(data.frames)))


def real_cross_validation(realus: Path = REALUS_ROOT, hc18: Path = HC18_ROOT) -> dict[str, Any]:
    """Recompute the card's out-of-fold real-frame figures (minutes: five head fits)."""
    data, syn_idx, real_idx = _featured(realus, hc18)
    return cross_validate(data, syn_idx, real_idx)


def _featured_sets(realus: Path, hc18: Path) -> tuple[dict[str, Featured], list[int], list[int]]:
    """Every candidate feature set's features of the same frames and augmented copies."""
    train_syn = synthetic_frames("train")
    frames = train_syn + real_frames(realus, hc18)
    featured = {
        name: Featured.of(_session(feature_model(cfg, SPEC.name).SerializeToString()), frames)
        for name, cfg in FEATURE_SETS.items()
    }
    n = len(train_syn)
    return featured, list(range(n)), list(range(n, len(frames)))


def nested_real_cross_validation(
    realus: Path = REALUS_ROOT,
    hc18: Path = HC18_ROOT,
    split: str = "grouped",
    balanced: bool = CLASS_BALANCED,
) -> dict[str, Any]:
    """Recompute the card's nested selection figures (fifty head fits: about ten minutes of
    one CPU with OPENBLAS_NUM_THREADS=1)."""
    featured, syn_idx, real_idx = _featured_sets(realus, hc18)
    return nested_cross_validate(featured, syn_idx, real_idx, split, balanced)


def build(realus: Path, hc18: Path, out: Path) -> Path:
    """Train, cross-validate, export and write the card; return the version's folder."""
    started = time.perf_counter()
    data, syn_idx, real_idx = _featured(realus, hc18)
    cv = cross_validate(data, syn_idx, real_idx)
    head, temp, refs = fit(data, syn_idx + real_idx)
    model = with_references(
        classifier_model(
            FEATURES, head, {"temperature": temp}, "softmax", SPEC.name, doc=f"{NAME} {VERSION}"
        ),
        refs,
    )
    model_bytes = model.SerializeToString()
    held = synthetic_frames("held_out")
    served = _session(model_bytes)
    outs = [
        served.run(["probabilities", "reference_distance"], {SPEC.name: to_tensor(f.gray, SPEC)})
        for f in held
    ]
    probs, distances = (np.concatenate([o[k] for o in outs]) for k in range(2))
    labels = np.array([f.view for f in held])
    held_out = multiclass_metrics(probs, labels, VIEWS)
    held_out["confusion_matrix"] = confusion(labels, served_view(probs, distances))
    card = _card(cv, held_out, temp, len(real_idx), time.perf_counter() - started)
    target = out / NAME / VERSION
    target.mkdir(parents=True, exist_ok=True)
    (target / "model.onnx").write_bytes(model_bytes)
    card["sha256"] = hashlib.sha256(model_bytes).hexdigest()
    card["size_bytes"] = len(model_bytes)
    (target / "card.json").write_text(json.dumps(_finite(card), indent=2) + "\n")
    return target


def _finite(value: Any) -> Any:
    """The card with NaN (an AUC of a view with no frames) as null: strict JSON readers."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _card(
    cv: dict[str, Any], held_out: dict[str, Any], temp: float, n_real: int, seconds: float
) -> dict[str, Any]:
    claimed = [v for v in VIEWS if v not in UNCLAIMED]
    return {
        "name": NAME,
        "version": VERSION,
        "kind": "view",
        "task": "View check: which anatomy a B-mode frame shows, so that each clinical module "
        "measures only frames of its own anatomy",
        "exam_types": ["carotid", "thyroid", "abdomen", "kidney", "liver", "obstetric", "other"],
        "input": {
            "name": SPEC.name,
            "shape": ["N", 1, SPEC.height, SPEC.width],
            "dtype": "float32",
            "preprocessing": {
                "color": "grayscale uint8 via ITU-R BT.601 luma, rounded",
                "resize": f"whole frame to {SPEC.width}x{SPEC.height} with Pillow bilinear "
                "(aspect ratio not kept, no crop)",
                "resample": SPEC.resample,
                "scale": SPEC.scale,
                "cine": "each sampled frame classified separately",
            },
        },
        "outputs": {
            "probabilities": f"float32 [N, {len(VIEWS)}], temperature-scaled softmax",
            "logits": f"float32 [N, {len(VIEWS)}]",
            "reference_distance": f"float32 [N, {len(VIEWS) + 1}], squared distance of the "
            "frame to each view's nearest real training frame (with its augmented copies), then "
            f"to the nearest generator frame (standardised features, {REFERENCE_DIMS} principal "
            "components)",
        },
        "labels": VIEWS,
        "claimed_views": claimed,
        "unclaimed_views": {
            "views": list(UNCLAIMED),
            "why": "no training frame shows them (the generator has no heart and no transverse "
            "carotid; no real frame of either): serving treats them as 'other', so no module runs",
        },
        "thresholds": {
            "min_confidence": MIN_CONFIDENCE,
            "about": "below it, on an unclaimed view, or when the nearest training frame "
            "(reference_distance) is a real frame of another view, the frame is 'other' and "
            "no clinical module measures it",
        },
        "calibration": {"method": "softmax temperature (NLL grid search)", "temperature": temp},
        "head": {
            "features": SERVED_FEATURES,
            "class_balanced": CLASS_BALANCED,
            "about": "feature set of the graph; whether every view weighed the same in the "
            "head's loss (rows weighted n / (views x rows of their view))",
        },
        "training_data": {
            "synthetic": {
                "generator": "sonobridge.lab.synthetic",
                "generator_version": GENERATOR_VERSION,
                "scenes_to_views": SYNTHETIC_VIEWS,
                "per_scene": PER_SCENE["train"],
                "faults": "every third frame has one of "
                + ", ".join(f.value for f in VISIBLE_FAULTS),
                "seed": SEEDS["train"],
            },
            "real": {
                "frames": n_real,
                "sets": "realus-dev clean frames (organ column: lung, breast, carotid "
                "(longitudinal), other; its HC18 rows as fetal-head) plus "
                f"{HC18_FRAMES} HC18 heads spread evenly over the index",
                "augmentation": f"{REAL_COPIES} copies per real frame, mirrored and gain x0.75-1.3",
                "credit": "POCUS lung (Born et al.), BUSI breast (Al-Dhabyani et al. 2020, "
                "Data in Brief 28:104863), common carotid (Momot, Mendeley Data d4xt63mgjm), "
                "HC18 (van den Heuvel et al. 2018, PLoS ONE 13(8): e0200412, Zenodo "
                "10.5281/zenodo.1327317, CC BY 4.0), ITKPOCUS Butterfly/Sonoque frames, "
                "pydicom's ultrasound examples; licences per frame in realus-dev's manifest",
            },
        },
        "held_out": {
            "generator": {
                **held_out,
                "per_scene": PER_SCENE["held_out"],
                "seed": SEEDS["held_out"],
            },
            "real_cross_validation": cv,
            "note": "development figures: realus-dev and HC18 hold back cases for the product "
            "owner's evaluation; no real kidney, thyroid or liver frame was available, so those "
            "views are learned from the generator only and untested on real devices",
        },
        "intended_use": "Routing frames to the clinical modules of their anatomy; never a "
        "diagnosis. Reference model, not for clinical use.",
        "disclaimer": "reference model, not for clinical use",
        "training_command": COMMAND,
        "training_seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, build the view check and print its cross-validated figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--realus", type=Path, default=REALUS_ROOT, help="folder with manifest.csv")
    parser.add_argument("--hc18", type=Path, default=HC18_ROOT, help="folder with hc18.csv")
    parser.add_argument("--out", type=Path, default=MODELS_DIR)
    parser.add_argument(
        "--nested",
        action="store_true",
        help="instead of building, run the nested CV that picks feature set and floor on inner "
        "folds and record it in the card (held_out.nested_selection)",
    )
    parser.add_argument(
        "--split",
        choices=sorted(SPLITS),
        default="grouped",
        help="how --nested splits real frames into outer and inner folds; 'stratified' is "
        "recorded as held_out.nested_selection_stratified",
    )
    parser.add_argument(
        "--balanced",
        action="store_true",
        help="with --nested, weigh every view the same in the head's loss (recorded with a "
        "'_balanced' suffix)",
    )
    args = parser.parse_args(argv)
    if args.nested:
        nested = nested_real_cross_validation(args.realus, args.hc18, args.split, args.balanced)
        path = args.out / NAME / VERSION / "card.json"
        card = json.loads(path.read_text())
        key = "nested_selection" + ("" if args.split == "grouped" else f"_{args.split}")
        key += "_balanced" if args.balanced else ""
        card["held_out"][key] = _finite(nested)
        path.write_text(json.dumps(card, indent=2) + "\n")
        print(json.dumps(nested, indent=1))
        return
    target = build(args.realus, args.hc18, args.out)
    card = json.loads((target / "card.json").read_text())
    print(json.dumps(card["held_out"]["real_cross_validation"], indent=1))
    print("generator held-out accuracy", round(card["held_out"]["generator"]["accuracy"], 4))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
