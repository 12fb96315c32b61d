"""The view gate on fakes: a clinical module measures only frames whose view is its anatomy."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from inference.unit.handlers.fakes import card, exam, png, world

from sonobridge.inference.domain.views import FrameView, read_view
from sonobridge.inference.handlers import exams
from sonobridge.inference.modules.base import ModuleFinding, ModuleFrame, ModuleOutput

VIEWS = ("kidney", "carotid-long", "lung", "heart", "other")
VIEW_CARD = card(
    "view-check",
    labels=VIEWS,
    thresholds={"min_confidence": 0.5},
    task="view check",
)
VIEW_CARD.raw["claimed_views"] = ["kidney", "carotid-long", "lung", "other"]
# The fake view model reads a frame's brightness (scaled 0-1) as its view.
BRIGHTNESS_VIEWS = [(0.7, "kidney", 0.9), (0.5, "carotid-long", 0.9), (0.3, "heart", 0.9)]


def view_outputs(x: np.ndarray) -> dict[str, Any]:
    """Bright frames are kidneys, mid-grey carotids, dim hearts; darker ones unsure lungs."""
    rows = []
    for frame in x:
        row = np.full(len(VIEWS), 0.0, np.float32)
        level = float(frame.mean())
        for floor, view, p in BRIGHTNESS_VIEWS:
            if level >= floor:
                row[VIEWS.index(view)] = p
                break
        else:
            row[VIEWS.index("lung")] = 0.4
            row[VIEWS.index("kidney")] = 0.25
        row[VIEWS.index("other")] += 1.0 - row.sum()
        rows.append(row)
    return {"probabilities": np.stack(rows)}


@dataclass
class MeasuringModule:
    """A module named like a clinical one that reports one length per frame it was given."""

    name: str
    version: str = "0.1.0"
    exam_types: frozenset[str] = frozenset({"kidney", "carotid", "other"})
    seen: list[int] = field(default_factory=list)

    def run(self, frames: Sequence[ModuleFrame]) -> ModuleOutput:
        self.seen += [int(f.pixels.mean()) for f in frames]
        findings = [
            ModuleFinding(
                f"{self.name}-length",
                "urn:test",
                "length",
                50.0,
                "mm",
                0.9,
                False,
                False,
                f.sop_instance_uid,
            )
            for f in frames
        ]
        return ModuleOutput(self.name, self.version, findings, {}, {})


def _world_with_view_model() -> Any:
    w = world(cards=[VIEW_CARD])
    w.catalog.loaded.add(("view-check", "1.0.0"))
    w.catalog.pins["view-check"] = "1.0.0"
    w.models.outputs["view-check"] = view_outputs
    return w


def test_each_module_measures_only_frames_of_its_own_anatomy():
    w = _world_with_view_model()
    kidney, carotid = MeasuringModule("kidney"), MeasuringModule("carotid-imt")
    w.deps.modules = [kidney, carotid]
    completed = exam(w.store, [png(220), png(140), png(40)], exam_type="kidney")
    exams.infer_exam(w.deps, w.work, completed, "event-1")
    assert kidney.seen == [220] and carotid.seen == [140]
    (result,) = w.work.results.added
    by_module = {f.model_name: f for f in result.findings}
    assert by_module["kidney"].sop_instance_uid == "1.2.3.0"
    assert by_module["kidney"].attributes["view"] == "kidney"
    assert by_module["kidney"].attributes["view_confidence"] == "0.9000"
    assert by_module["carotid-imt"].attributes["view"] == "carotid-long"
    assert "view-check@1.0.0" in result.key.model_versions


def test_an_unsure_or_unclaimed_view_is_other_and_no_anatomy_module_measures_it():
    w = _world_with_view_model()
    kidney = MeasuringModule("kidney")
    w.deps.modules = [kidney]
    # 90: a "heart" the card does not claim; 20: a lung below the confidence floor.
    exams.infer_exam(w.deps, w.work, exam(w.store, [png(90), png(20)], exam_type="kidney"), "e")
    (result,) = w.work.results.added
    assert kidney.seen == [] and result.findings == ()
    key = "derived/1.2.3/view-check/1.0.0/views.json"
    record = json.loads(w.store.objects[key][0])
    assert [f["view"] for f in record["frames"]] == ["other", "other"]
    assert [f["model_view"] for f in record["frames"]] == ["heart", "lung"]
    assert record["frames_measured_per_module"] == {"kidney": 0}
    assert w.count("sonobridge_inference_frame_views_total", view="other") == 2


def test_the_stated_exam_type_never_overrides_the_view():
    w = _world_with_view_model()
    kidney = MeasuringModule("kidney")
    w.deps.modules = [kidney]
    # The app says kidney; the frame is a carotid: the kidney module does not measure it.
    exams.infer_exam(w.deps, w.work, exam(w.store, [png(140)], exam_type="kidney"), "e")
    assert kidney.seen == [] and w.work.results.added[0].findings == ()


def test_without_a_view_model_anatomy_modules_measure_nothing_and_others_still_run():
    w = world()
    kidney, plugin = MeasuringModule("kidney"), MeasuringModule("test-plugin")
    w.deps.modules = [kidney, plugin]
    exams.infer_exam(w.deps, w.work, exam(w.store, [png(220)], exam_type="kidney"), "e")
    (result,) = w.work.results.added
    assert kidney.seen == [] and plugin.seen == [220]
    assert [f.model_name for f in result.findings] == ["test-plugin"]
    assert result.findings[0].attributes["view"] == "unchecked"
    assert "view-check" not in result.key.model_versions


@pytest.mark.parametrize(
    ("probabilities", "view"),
    [
        ([0.9, 0.05, 0.05], "kidney"),
        ([0.45, 0.3, 0.25], "other"),
        ([0.1, 0.8, 0.1], "other"),
    ],
)
def test_a_view_below_the_floor_or_not_claimed_reads_as_other(probabilities, view):
    read = read_view(("kidney", "heart", "other"), probabilities, 0.5, frozenset({"kidney"}))
    assert read.view == view and read.confidence == max(probabilities)
    assert read == FrameView(
        view, max(probabilities), ("kidney", "heart", "other")[int(np.argmax(probabilities))]
    )


@pytest.mark.parametrize(
    ("distances", "view"),
    [
        ([0.5, 9.0, 4.0, 2.0], "kidney"),
        # Nearest is a generator frame: it vouches for no view, the head's view stands.
        ([6.0, 9.0, 4.0, 0.5], "kidney"),
        # A confident kidney whose nearest training frame is a real frame of another view.
        ([6.0, 9.0, 0.5, 2.0], "other"),
    ],
)
def test_a_confident_view_nearest_to_a_real_frame_of_another_reads_as_other(distances, view):
    read = read_view(
        ("kidney", "heart", "other"), [0.99, 0.005, 0.005], 0.5, frozenset({"kidney"}), distances
    )
    assert read.view == view and read.model_view == "kidney" and read.confidence == 0.99


def test_the_gate_applies_the_models_reference_distances_when_it_has_them():
    w = _world_with_view_model()

    def with_distances(x: np.ndarray) -> dict[str, Any]:
        out = view_outputs(x)
        # The bright frame is nearest to a real lung frame, the mid-grey one to a carotid.
        near = [VIEWS.index("lung") if f.mean() >= 0.7 else VIEWS.index("carotid-long") for f in x]
        out["reference_distance"] = np.stack(
            [np.where(np.arange(len(VIEWS) + 1) == n, 0.1, 5.0).astype(np.float32) for n in near]
        )
        return out

    w.models.outputs["view-check"] = with_distances
    kidney, carotid = MeasuringModule("kidney"), MeasuringModule("carotid-imt")
    w.deps.modules = [kidney, carotid]
    exams.infer_exam(w.deps, w.work, exam(w.store, [png(220), png(140)], exam_type="kidney"), "e")
    assert kidney.seen == [] and carotid.seen == [140]
    record = json.loads(w.store.objects["derived/1.2.3/view-check/1.0.0/views.json"][0])
    assert [(f["view"], f["model_view"]) for f in record["frames"]] == [
        ("other", "kidney"),
        ("carotid-long", "carotid-long"),
    ]
