"""Use cases of the inference service, one module per family; transports call these only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sonobridge.common.objects.ports import ObjectStore
from sonobridge.inference.imaging.decode import FrameSampling
from sonobridge.inference.metrics import InferenceMetrics
from sonobridge.inference.modules.base import ExamModule
from sonobridge.inference.ports import (
    DeviceValidations,
    ExamWork,
    ModelServing,
    VersionComparisons,
)

Clock = Callable[[], datetime]


@dataclass
class Dependencies:
    """What the use cases need; bootstrap builds it, tests pass their own fakes."""

    models: ModelServing
    store: ObjectStore
    metrics: InferenceMetrics
    clock: Clock
    # Opens the exam pipeline's unit of work in the transaction the consumer worker began.
    exam_work: Callable[[Any], ExamWork]
    sampling: FrameSampling = field(default_factory=FrameSampling)
    modules: list[ExamModule] = field(default_factory=list)
    instance_delay_seconds: float = 0.0
    # Stored states per device model; without a store every device keeps its card's default.
    validations: DeviceValidations | None = None
    # Verdicts joined to expert labels (the shadow-vs-serving comparison); None: not kept.
    comparisons: VersionComparisons | None = None
