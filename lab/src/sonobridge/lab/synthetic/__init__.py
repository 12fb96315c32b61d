"""Synthetic B-mode ultrasound with ground truth, for training, tests and the demo."""

from sonobridge.lab.synthetic.acquisition import (
    FAULTS,
    GENERATOR_VERSION,
    AcquisitionSpec,
    Fault,
    GroundTruth,
    ProbeState,
    SyntheticExam,
    SyntheticFrame,
    generate_exam,
    generate_frame,
)
from sonobridge.lab.synthetic.geometry import ProbeGeometry
from sonobridge.lab.synthetic.scene import EXAM_TYPES, Scene, build_scene

__all__ = [
    "EXAM_TYPES",
    "FAULTS",
    "GENERATOR_VERSION",
    "AcquisitionSpec",
    "Fault",
    "GroundTruth",
    "ProbeGeometry",
    "ProbeState",
    "Scene",
    "SyntheticExam",
    "SyntheticFrame",
    "build_scene",
    "generate_exam",
    "generate_frame",
]
