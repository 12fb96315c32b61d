"""The app's gestational age on an exam's instance reaches the frames a module measures."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from inference.unit.handlers.fakes import exam, png, world

from sonobridge.inference.handlers import exams
from sonobridge.inference.modules.base import ModuleFrame, ModuleOutput


@dataclass
class DatesRecorder:
    """An obstetric module that only records the dates each frame carries."""

    name: str = "test-dates"
    version: str = "0.1.0"
    exam_types: frozenset[str] = frozenset({"obstetric"})
    seen: list[tuple[str, float | None]] = field(default_factory=list)

    def run(self, frames: Sequence[ModuleFrame]) -> ModuleOutput:
        self.seen.extend((f.sop_instance_uid, f.app_gestational_age_weeks) for f in frames)
        return ModuleOutput(self.name, self.version, [], {}, {})


def test_each_frame_carries_its_instance_s_app_dates_and_none_when_unsent():
    w = world()
    recorder = DatesRecorder()
    w.deps.modules = [recorder]
    completed = exam(w.store, [png(100), png(140)], exam_type="obstetric")
    dated = dataclasses.replace(completed.instances[0], app_gestational_age_weeks=23.4)
    completed = dataclasses.replace(completed, instances=(dated, completed.instances[1]))
    exams.infer_exam(w.deps, w.work, completed, "event-1")
    assert sorted(recorder.seen) == [("1.2.3.0", 23.4), ("1.2.3.1", None)]
