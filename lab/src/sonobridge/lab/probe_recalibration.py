"""Recalibrate probe-health thresholds on clean real frames and register the version in shadow.

`uv run --package sonobridge-lab python -m sonobridge.lab.probe_recalibration --frames DIR`

The network is the serving one, unchanged: only the card's thresholds move. An exam is one
group of the manifest (a video or a patient), its score the mean over its frames as serving
aggregates it; dead elements are injected with one seed per exam, so the same lines stay dark in
every frame of it, as on a real probe.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sonobridge.inference.imaging.preprocess import InputSpec, to_tensor
from sonobridge.inference.modules.common import MODELS_DIR
from sonobridge.lab.adapt import (
    RealFrame,
    _session,
    frames_parser,
    group_folds,
    read_frames,
    write_version,
)
from sonobridge.lab.faults import InjectedFault, inject

NAME = "probe-health"
BASE_VERSION = "1.0.0"
VERSION = "1.1.0"
COMMAND = "uv run --package sonobridge-lab python -m sonobridge.lab.probe_recalibration"
SPEC = InputSpec("image", 256, 256)
EVAL_SEED = 700_000
# The most clean exams a threshold may flag on the folds that choose it; the held-out fold then
# says what it really does.
MAX_TRAINING_FALSE_ALARMS = 0.05


@dataclass(frozen=True)
class ExamScores:
    """Exam-level scores (mean of frame scores) of every group, clean and with dead elements."""

    groups: list[str]
    clean: np.ndarray
    faulty: np.ndarray
    clean_frames: np.ndarray
    faulty_frames: np.ndarray
    frame_group: np.ndarray


def score_exams(frames: list[RealFrame], model_bytes: bytes) -> ExamScores:
    """Score each frame clean and with dead elements; average per group as serving does."""
    session = _session(model_bytes)
    groups = sorted({f.group for f in frames})
    seed_of = {g: EVAL_SEED + i for i, g in enumerate(groups)}

    def scores(images: list[np.ndarray]) -> np.ndarray:
        x = np.concatenate([to_tensor(img, SPEC) for img in images])
        return np.asarray(session.run(["probabilities"], {SPEC.name: x})[0][:, 0])

    clean = scores([f.gray for f in frames])
    faulty = scores([inject(f.gray, InjectedFault.DEAD_ELEMENTS, seed_of[f.group]) for f in frames])
    member = np.array([groups.index(f.group) for f in frames])
    per_exam = lambda s: np.array([s[member == i].mean() for i in range(len(groups))])  # noqa: E731
    return ExamScores(groups, per_exam(clean), per_exam(faulty), clean, faulty, member)


def choose_threshold(clean_exam_scores: np.ndarray) -> float:
    """Return the lowest threshold that flags at most the allowed share of these clean exams."""
    allowed = int(np.floor(MAX_TRAINING_FALSE_ALARMS * clean_exam_scores.size))
    ranked = np.sort(clean_exam_scores)[::-1]
    # Just above the (allowed+1)-th highest clean score: that exam and all below it pass.
    return float(min(1.0, ranked[allowed] + 1e-6)) if ranked.size > allowed else 0.5


def cross_validate(frames: list[RealFrame], scores: ExamScores, folds: int) -> dict:
    """Choose the threshold on training folds, measure it on the held-out fold's exams."""
    fold_of_frame = group_folds(frames, folds)
    fold_of = {f.group: k for f, k in zip(frames, fold_of_frame, strict=True)}
    exam_fold = np.array([fold_of[g] for g in scores.groups])
    false_alarm = np.zeros(len(scores.groups), dtype=bool)
    caught = np.zeros(len(scores.groups), dtype=bool)
    thresholds = []
    for k in range(folds):
        test = exam_fold == k
        if not test.any():
            continue
        t = choose_threshold(scores.clean[~test])
        thresholds.append(t)
        false_alarm[test] = scores.clean[test] >= t
        caught[test] = scores.faulty[test] >= t
    return {
        "method": f"{folds}-fold group-wise: threshold chosen on the training folds' clean "
        "exams, measured on the held-out fold's exams",
        "n_exams": len(scores.groups),
        "false_alarm_rate_per_clean_exam": float(false_alarm.mean()),
        "dead_elements_caught_per_exam": float(caught.mean()),
        "fold_thresholds": [round(t, 4) for t in thresholds],
    }


def recalibrate(frames_dir: Path, out: Path, folds: int = 5) -> dict:
    """Recalibrate the thresholds, write the card beside the same network; return the card."""
    frames = read_frames(frames_dir)
    base = MODELS_DIR / NAME / BASE_VERSION
    model_bytes = (base / "model.onnx").read_bytes()
    scores = score_exams(frames, model_bytes)
    base_card = json.loads((base / "card.json").read_text())
    old = float(base_card["thresholds"]["exam"])
    threshold = choose_threshold(scores.clean)
    card = copy.deepcopy(base_card)
    card["version"] = VERSION
    # Rounded up, never down: a rounded-down threshold would flag the exam it sits above.
    shown = math.ceil(threshold * 1e4) / 1e4
    card["thresholds"]["frame"] = shown
    card["thresholds"]["exam"] = shown
    card["validation"]["validated_device_models"] = []
    card["registration"] = {
        "stage": "shadow",
        "beside": BASE_VERSION,
        "about": "same network as the serving version, thresholds recalibrated on real frames",
    }
    for key in ("sha256", "size_bytes"):
        card.pop(key, None)
    card["real_frames"] = {
        "folder": frames_dir.name,
        "n_clean_frames": len(frames),
        "n_clean_exams": len(scores.groups),
        "exam": "one manifest group (a video or patient); score = mean of its frames",
        "faults_injected": "dead_elements (sonobridge.lab.faults), one seed per exam",
        f"at_{BASE_VERSION}_threshold_{old}": {
            "false_alarm_rate_per_clean_exam": float((scores.clean >= old).mean()),
            "dead_elements_caught_per_exam": float((scores.faulty >= old).mean()),
        },
        "cross_validation": cross_validate(frames, scores, folds),
        "ticket_rule": "maintenance opens a ticket only when dead elements persist across "
        "consecutive exams of one probe (ProbeHealthRule.min_findings), so one exam's false "
        "alarm alone never opens one",
        "note": "development figures on realus-dev; held-back cases are not here",
    }
    card["training_command"] = f"{COMMAND} --frames {frames_dir.name} --out MODELS_DIR"
    write_version(out, card, model_bytes)
    return card


def main(argv: list[str] | None = None) -> None:
    """Recalibrate and print the cross-validated false alarms per clean exam."""
    args = frames_parser(__doc__, folds=5).parse_args(argv)
    card = recalibrate(args.frames, args.out, args.folds)
    real = card["real_frames"]
    cv = real["cross_validation"]
    before = next(v for k, v in real.items() if k.startswith(f"at_{BASE_VERSION}"))
    print(
        f"{NAME} {VERSION} (shadow): threshold {card['thresholds']['exam']}; CV false alarms per "
        f"clean exam {cv['false_alarm_rate_per_clean_exam']:.3f}, dead elements caught per exam "
        f"{cv['dead_elements_caught_per_exam']:.3f} ({BASE_VERSION}: "
        f"{before['false_alarm_rate_per_clean_exam']:.3f}, "
        f"{before['dead_elements_caught_per_exam']:.3f})"
    )


if __name__ == "__main__":
    main()
