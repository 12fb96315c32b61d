"""The view check of an exam's frames: which frames each clinical module may measure on."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sonobridge.inference.domain.errors import ModelNotFound, ModelNotLoaded
from sonobridge.inference.domain.readable import ModuleInput
from sonobridge.inference.domain.views import (
    OTHER,
    UNCHECKED,
    FrameView,
    anatomy_of,
    measures_on,
    read_view,
)
from sonobridge.inference.handlers import Dependencies
from sonobridge.inference.handlers.serving import preprocess, run_model
from sonobridge.inference.modules.base import ExamModule, ModuleFrame, ModuleOutput
from sonobridge.inference.ports import ServedModel

VIEW_MODEL = "view-check"
# The serving batcher's largest batch; an exam's frames go through in slices of it.
_BATCH = 32
_DEFAULT_MIN_CONFIDENCE = 0.5
# Each view's distance to its nearest real training frame, then to the nearest generator frame,
# in models that carry their references.
REFERENCE_OUTPUT = "reference_distance"


@dataclass(frozen=True)
class ExamViews:
    """The view of each frame the modules were given, parallel to those frames."""

    frames: list[ModuleFrame]
    views: list[FrameView]
    model: ServedModel | None

    def record(self, measured: dict[str, int]) -> dict[str, Any]:
        """The derived views.json: each frame's view and how many frames each module measured."""
        model = self.model
        return {
            "model": None if model is None else model.card.name,
            "version": None if model is None else model.card.version,
            "frames": [
                {
                    "sop_instance_uid": f.sop_instance_uid,
                    "frame_index": f.frame_index,
                    "view": v.view,
                    "confidence": v.confidence,
                    "model_view": v.model_view,
                }
                for f, v in zip(self.frames, self.views, strict=True)
            ],
            "frames_measured_per_module": measured,
        }


def view_model(deps: Dependencies) -> ServedModel | None:
    """The loaded view check, or None when this replica serves none."""
    try:
        return deps.models.get(VIEW_MODEL)
    except (ModelNotLoaded, ModelNotFound):
        return None


def check_views(deps: Dependencies, model: ServedModel | None, given: ModuleInput) -> ExamViews:
    """Classify the view of every frame the modules were given ("unchecked" without a model)."""
    frames = given.frames
    if model is None or not frames:
        return ExamViews(frames, [FrameView(UNCHECKED, 0.0) for _ in frames], model)
    card = model.card
    min_confidence = float(card.thresholds.get("min_confidence", _DEFAULT_MIN_CONFIDENCE))
    claimed = frozenset(card.raw.get("claimed_views", card.labels))
    views: list[FrameView] = []
    for start in range(0, len(frames), _BATCH):
        # Frames of different instances differ in size: each is resized on its own.
        chunk = frames[start : start + _BATCH]
        x = np.concatenate([preprocess(deps, model, f.pixels) for f in chunk])
        out = run_model(deps, model, x, time.perf_counter())
        distances = out.get(REFERENCE_OUTPUT)
        views += [
            read_view(
                card.labels,
                [float(p) for p in row],
                min_confidence,
                claimed,
                None if distances is None else [float(d) for d in distances[i]],
            )
            for i, row in enumerate(out["probabilities"])
        ]
    for v in views:
        deps.metrics.frame_views.labels(v.view).inc()
    return ExamViews(frames, views, model)


def frames_for(module: ExamModule, given: ModuleInput, views: ExamViews) -> ModuleInput:
    """The given frames whose view is the module's anatomy; none when no view was checked."""
    anatomy = anatomy_of(module.name)
    kept = [
        f
        for f, v in zip(given.frames, views.views, strict=True)
        if measures_on(anatomy, v) and (v.checked or anatomy is None)
    ]
    return replace(given, frames=kept)


def with_views(out: ModuleOutput, measured: ModuleInput, views: ExamViews) -> ModuleOutput:
    """Label each finding with the view (and its confidence) of the frames it was made on."""
    by_instance: dict[str, FrameView] = {}
    # Frames hold arrays: compared by identity, since equality of arrays has no truth value.
    mine = {id(f) for f in measured.frames}
    for f, v in zip(views.frames, views.views, strict=True):
        if id(f) in mine:
            best = by_instance.get(f.sop_instance_uid)
            if best is None or v.confidence > best.confidence:
                by_instance[f.sop_instance_uid] = v
    counts = Counter(v.view for v in by_instance.values())
    exam_view = counts.most_common(1)[0][0] if counts else OTHER
    findings = []
    for finding in out.findings:
        view = by_instance.get(finding.sop_instance_uid)
        attributes = {
            **finding.attributes,
            "view": view.view if view else exam_view,
            "view_confidence": f"{view.confidence:.4f}" if view else "",
        }
        findings.append(replace(finding, attributes=attributes))
    out.findings = findings
    out.details["frames_measured_for_view"] = len(measured.frames)
    return out
