"""The lab's public API for the node's demo: synthetic exams and real HC18 heads as DICOM bytes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sonobridge.lab import hc18
from sonobridge.lab.synthetic import AcquisitionSpec, Fault, ProbeState, generate_exam
from sonobridge.lab.synthetic.dicom import SyntheticExamContext, ultrasound_dicom_bytes

HC18_ROOT = hc18.DEFAULT_ROOT

__all__ = [
    "HC18_ROOT",
    "Fault",
    "Hc18Head",
    "ProbeState",
    "SyntheticExam",
    "SyntheticExamContext",
    "carotid_max_imt_mm",
    "hc18_head",
    "synthetic_exam",
]


@dataclass(frozen=True)
class SyntheticExam:
    """One synthetic US multi-frame instance and what the generator put in it."""

    dicom: bytes
    faults: list[str]
    anatomy: dict[str, Any]
    dead_lines: list[int]


@dataclass(frozen=True)
class Hc18Head:
    """One real HC18 fetal head as a DICOM instance, with the expert's circumference."""

    dicom: bytes
    filename: str
    hc_mm: float
    pixel_mm: float


def synthetic_exam(
    exam_type: str,
    seed: int,
    context: SyntheticExamContext,
    *,
    faults: frozenset[Fault] = frozenset(),
    probe_state: ProbeState | None = None,
    n_lesions: int | None = None,
    frames: int = 4,
) -> SyntheticExam:
    """Generate a seeded exam and wrap its frames as one JPEG-baseline US multi-frame instance."""
    spec = AcquisitionSpec(
        exam_type=exam_type, faults=faults, probe_state=probe_state, n_lesions=n_lesions
    )
    exam = generate_exam(seed, spec, n_frames=frames)
    truth = exam.frames[0].truth
    data = ultrasound_dicom_bytes(
        exam.pixels(), truth.pixel_spacing_mm, context=context, encoding="jpeg-baseline"
    )
    return SyntheticExam(
        dicom=data,
        faults=list(truth.faults),
        anatomy=truth.anatomy,
        dead_lines=list(exam.probe_state.dead_lines),
    )


def carotid_max_imt_mm(seed: int) -> float:
    """Return the far-wall maximum IMT of the carotid the generator draws for `seed`."""
    exam = generate_exam(seed, AcquisitionSpec(exam_type="carotid"), n_frames=1)
    return float(exam.frames[0].truth.anatomy["carotid"]["max_imt_mm"])


def hc18_head(
    context: SyntheticExamContext,
    root: Path = HC18_ROOT,
    hc_range_mm: tuple[float, float] = (150.0, 250.0),
) -> Hc18Head | None:
    """Return the first development-split head within `hc_range_mm`, or None without HC18."""
    if not (root / "hc18.csv").exists():
        return None
    low, high = hc_range_mm
    dev = hc18.splits(hc18.read_index(root))["development"]
    image = next(im for im in dev if low < im.hc_mm < high)
    data = ultrasound_dicom_bytes(
        image.pixels(root)[None], (image.pixel_mm, image.pixel_mm), context=context
    )
    return Hc18Head(dicom=data, filename=image.filename, hc_mm=image.hc_mm, pixel_mm=image.pixel_mm)
