"""Which frames the clinical modules measure on, and how findings on unreadable ones are marked."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sonobridge.inference.modules.base import ModuleFrame, ModuleOutput
from sonobridge.inference.modules.terminology import bind


@dataclass(frozen=True)
class ModuleInput:
    """The frames the clinical modules measure on, chosen once per exam."""

    frames: list[ModuleFrame]
    skipped: int
    # True when the quality model rejected every frame: all findings then go to an expert.
    unreadable: bool
    exam_type: str


def choose_frames(frames: list[ModuleFrame], acceptable: list[bool], exam_type: str) -> ModuleInput:
    """Pick the frames to measure on: the readable ones, else all of them marked unreadable.

    An expert measures on readable frames only; when the quality model rejects every frame the
    modules still run (the nurse sees what was attempted) but every finding goes to an expert.
    """
    readable = [f for f, ok in zip(frames, acceptable, strict=True) if ok]
    if not readable:
        return ModuleInput(list(frames), 0, True, exam_type)
    return ModuleInput(readable, len(frames) - len(readable), False, exam_type)


def finish_findings(out: ModuleOutput, given: ModuleInput) -> ModuleOutput:
    """Code a module's findings in SNOMED CT and label those made on unreadable frames."""
    findings = [bind(f, given.exam_type) for f in out.findings]
    if given.unreadable:
        findings = [
            replace(
                f,
                low_confidence=True,
                attributes={**f.attributes, "image_quality": "not acceptable"},
            )
            for f in findings
        ]
    out.findings = findings
    out.details["frames_skipped_for_quality"] = given.skipped
    out.details["all_frames_below_quality"] = given.unreadable
    return out
