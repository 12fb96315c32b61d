"""Validation reports: a gating model's figures on one device model's labelled frames."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sonobridge.common.problems import InvalidInput
from sonobridge.inference.domain.validation import GATING_MODELS, DeviceModel
from sonobridge.inference.handlers import Dependencies
from sonobridge.inference.handlers.quality import PROBE_HEALTH_MODEL, assess_quality
from sonobridge.inference.handlers.serving import preprocess, run_model
from sonobridge.inference.imaging.decode import FrameSelection, decode_image


@dataclass(frozen=True)
class LabelledFrame:
    """One frame and its label: None when clean, else the fault it shows (a quality reason)."""

    name: str
    data: bytes
    fault: str | None


def report_validation(
    deps: Dependencies, model_name: str, device: DeviceModel, frames: Iterable[LabelledFrame]
) -> dict[str, Any]:
    """Run a gating model over labelled frames of one device model and write its report.

    The model's own verdict counts, whatever the device's state: that is what promotion
    would let act. For probe health only dead elements are a fault it should flag.
    """
    if model_name not in GATING_MODELS:
        raise InvalidInput(f"{model_name!r} is not a gating model ({', '.join(GATING_MODELS)})")
    model = deps.models.get(model_name)
    clean = flagged_clean = 0
    faulty: dict[str, list[bool]] = {}
    for frame in frames:
        flagged = _flags(deps, model_name, frame.data)
        fault = frame.fault
        if model_name == PROBE_HEALTH_MODEL and fault != "dead_elements":
            fault = None
        if fault is None:
            clean += 1
            flagged_clean += flagged
        else:
            faulty.setdefault(fault, []).append(flagged)
    caught = [f for flags in faulty.values() for f in flags]
    return {
        "device_model": {"manufacturer": device.manufacturer, "model_name": device.model_name},
        "model": {"name": model.card.name, "version": model.card.version},
        "n_frames": clean + len(caught),
        "n_clean": clean,
        "n_faulty": len(caught),
        # Without clean frames there is no evidence: the worst rate, so promotion is refused.
        "false_rescan_rate": flagged_clean / clean if clean else 1.0,
        "fault_catch_rate": sum(caught) / len(caught) if caught else 0.0,
        "fault_catch_rate_per_fault": {k: sum(v) / len(v) for k, v in sorted(faulty.items())},
    }


def _flags(deps: Dependencies, model_name: str, data: bytes) -> bool:
    decoded = decode_image(data, FrameSelection(0))
    if model_name == PROBE_HEALTH_MODEL:
        model = deps.models.get(model_name)
        out = run_model(deps, model, preprocess(deps, model, decoded.frames), time.perf_counter())
        return bool(out["probabilities"][0, 0] >= float(model.card.thresholds["frame"]))
    return not assess_quality(deps, decoded.frames, decoded.frame_indices).verdict.acceptable
