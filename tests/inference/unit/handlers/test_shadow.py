"""Shadow versions run beside the served ones; a comparison joins both to expert labels."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from inference.unit.handlers.fakes import (
    GATING_VALIDATION,
    PROBE_CARD,
    QUALITY_LABELS,
    World,
    card,
    exam,
    probe_outputs,
    quality_outputs,
    world,
)
from inference.unit.handlers.test_validation import ADMIN, EXPERT, dicom

from sonobridge.common.problems import Forbidden, InvalidInput
from sonobridge.inference.domain.validation import DeviceModel, ExpertLabel
from sonobridge.inference.entrypoints.comparison import comparison_document, comparison_text
from sonobridge.inference.handlers import exams, shadow, validation

ACME = DeviceModel.of("Acme Medical", "Pocket Two")
AT = datetime(2026, 1, 6, 10, 0, tzinfo=UTC)
SHADOW_QUALITY = card(
    "image-quality",
    "1.2.0",
    labels=QUALITY_LABELS,
    thresholds={"rescan_if_acceptable_below": 0.5},
    validation={**GATING_VALIDATION, "validated_device_models": []},
)
SHADOW_PROBE = card(
    "probe-health",
    "1.1.0",
    thresholds={"frame": 0.5, "exam": 0.5},
    validation={**GATING_VALIDATION, "validated_device_models": []},
)
for shadow_card in (SHADOW_QUALITY, SHADOW_PROBE):
    shadow_card.raw["registration"] = {"stage": "shadow", "beside": "1.0.0"}


def with_shadows(**outputs: Any) -> World:
    """Return fakes serving 1.0.0 with image-quality 1.2.0 and probe-health 1.1.0 in shadow."""
    w = world(state=None, cards=[SHADOW_QUALITY, SHADOW_PROBE])
    for c in (SHADOW_QUALITY, SHADOW_PROBE):
        w.catalog.loaded.add((c.name, c.version))
    w.models.outputs.update(outputs)
    return w


def per_instance(values: list[float], run: Any) -> Any:
    """Return outputs that give the n-th call's frames the n-th value (one instance a call)."""
    calls = iter(values)

    def outputs(x: np.ndarray) -> dict[str, Any]:
        return run(next(calls))(x)

    return outputs


def acme_exam(w: World, n: int) -> Any:
    """Store n one-frame instances from the Acme Pocket Two and return their exam."""
    return exam(w.store, [dicom("Acme Medical", "Pocket Two") for _ in range(n)])


def expert_label(uid: str, fault: str | None) -> ExpertLabel:
    """Return an expert's label of an instance on the Acme (what the model said is unused)."""
    return ExpertLabel("image-quality", ACME, uid, fault, False, "dr-chen", AT)


def test_every_instance_also_goes_through_each_shadow_version_and_nothing_else_changes():
    w = with_shadows(**{"image-quality@1.2.0": quality_outputs(0.1, "lost_contact")})
    exams.infer_exam(w.deps, w.work, acme_exam(w, 2), "event-1")
    (result,) = w.work.results.added
    got = sorted((v.model_name, v.model_version, v.stage, v.flagged) for v in result.verdicts)
    assert got == [
        ("image-quality", "1.0.0", "serving", False),
        ("image-quality", "1.0.0", "serving", False),
        ("image-quality", "1.2.0", "shadow", True),
        ("image-quality", "1.2.0", "shadow", True),
        ("probe-health", "1.0.0", "serving", False),
        ("probe-health", "1.0.0", "serving", False),
        ("probe-health", "1.1.0", "shadow", False),
        ("probe-health", "1.1.0", "shadow", False),
    ]
    assert {v.device_model for v in result.verdicts} == {ACME.key}
    assert {v.reason for v in result.verdicts if v.flagged} == {"lost_contact"}
    # What users, the event and the result key see comes from the served versions only.
    assert result.key.model_versions == "image-quality@1.0.0,probe-health@1.0.0"
    assert all(q.assessment.model_acceptable for q in result.instance_quality)
    assert "1.2.0" not in str(result.summary()) and w.work.published == [result]
    assert not any("1.2.0" in key for key in result.derived_object_keys)


def test_without_a_shadow_version_only_the_served_verdicts_are_kept():
    w = world(state=None)
    exams.infer_exam(w.deps, w.work, acme_exam(w, 1), "event-1")
    (result,) = w.work.results.added
    assert {(v.model_name, v.stage) for v in result.verdicts} == {
        ("image-quality", "serving"),
        ("probe-health", "serving"),
    }
    assert [name for name, _ in w.models.calls] == ["image-quality", "probe-health"]


def test_a_recalibrated_shadow_reuses_the_served_outputs_with_its_own_thresholds():
    recalibrated = card(
        "probe-health", "1.1.0", thresholds={"frame": 0.05, "exam": 0.05}, validation={}
    )
    recalibrated.raw["registration"] = {"stage": "shadow"}
    # The same network as the served version: only the thresholds were refitted.
    same = replace(recalibrated, sha256=PROBE_CARD.sha256)
    w = world(state=None, cards=[same])
    w.catalog.loaded.add(("probe-health", "1.1.0"))
    exams.infer_exam(w.deps, w.work, acme_exam(w, 1), "event-1")
    (result,) = w.work.results.added
    flags = {
        (v.model_version, v.flagged) for v in result.verdicts if v.model_name == "probe-health"
    }
    assert flags == {("1.0.0", False), ("1.1.0", True)}
    assert [name for name, _ in w.models.calls].count("probe-health") == 1


def test_a_failing_shadow_version_is_counted_and_the_exam_goes_on():
    def broken(x: np.ndarray) -> dict[str, Any]:
        raise RuntimeError("bad graph")

    w = with_shadows(**{"image-quality@1.2.0": broken})
    exams.infer_exam(w.deps, w.work, acme_exam(w, 1), "event-1")
    (result,) = w.work.results.added
    assert result.status.value == "COMPLETED" and result.error_message == ""
    assert ("image-quality", "1.2.0") not in {
        (v.model_name, v.model_version) for v in result.verdicts
    }
    errors = "sonobridge_inference_errors_total"
    assert w.count(errors, model="image-quality", kind="shadow") == 1


def test_the_comparison_counts_each_version_against_the_labels_and_against_each_other():
    # Served: p(acceptable) per instance 0.9, 0.2, 0.9, 0.2, 0.9; shadow: 0.9, 0.9, 0.2, 0.2, 0.9.
    w = with_shadows(
        **{
            "image-quality": per_instance([0.9, 0.2, 0.9, 0.2, 0.9], quality_outputs),
            "image-quality@1.2.0": per_instance([0.9, 0.9, 0.2, 0.2, 0.9], quality_outputs),
            "probe-health": probe_outputs(0.1),
        }
    )
    completed = acme_exam(w, 5)
    exams.infer_exam(w.deps, w.work, completed, "event-1")
    uids = [i.sop_instance_uid for i in completed.instances]
    # Experts: clean, clean, low gain, low gain; the fifth instance is never labelled.
    faults = [None, None, "low_gain", "low_gain"]
    labels = [expert_label(uid, fault) for uid, fault in zip(uids, faults, strict=False)]
    validation.record_quality_labels(w.deps, EXPERT, labels)
    shadow.follow_labels(w.deps, labels)

    found = shadow.compare_served_versions(w.deps, ADMIN, "image-quality")
    (device,) = found.devices
    assert device.device == ACME and found.serving_version == "1.0.0"
    figures = {f.version: f for f in device.versions}
    served, shadowed = figures["1.0.0"], figures["1.2.0"]
    assert (served.labelled, served.clean, served.faulty) == (4, 2, 2)
    # Served flags instances 2 and 4: one clean (a false rescan), one faulty (caught).
    assert (served.false_rescans, served.faults_caught, served.stage) == (1, 1, "serving")
    # Shadow flags 3 and 4: both faulty.
    assert (shadowed.false_rescans, shadowed.faults_caught, shadowed.stage) == (0, 2, "shadow")
    assert shadowed.false_rescan_rate == 0.0 and shadowed.fault_catch_rate == 1.0
    (agreement,) = device.agreements
    assert (agreement.version, agreement.both, agreement.agreeing) == ("1.2.0", 4, 2)
    (line,) = device.recommendations
    assert line.startswith("image-quality 1.2.0 on acme medical / pocket two: promotion would not")
    assert "4 labelled frames, the card asks at least 50" in line

    gauge = "sonobridge_inference_comparison_instances"
    key = {"model": "image-quality", "device_model": ACME.key}
    assert w.count(gauge, **key, version="1.2.0", stage="shadow", outcome="fault_caught") == 2
    assert w.count(gauge, **key, version="1.0.0", stage="serving", outcome="false_rescan") == 1
    ratio = "sonobridge_inference_comparison_agreement_ratio"
    assert w.count(ratio, **key, version="1.2.0") == 0.5

    document = comparison_document(found)
    assert document["device_models"][0]["versions"][1]["faults_caught"] == 2
    # Counts only: no instance UID reaches the report.
    assert not any(uid in str(document) or uid in comparison_text(found) for uid in uids)


def test_a_shadow_version_that_meets_its_card_on_live_labels_is_recommended():
    w = with_shadows(**{"image-quality": per_instance([0.2] * 60, quality_outputs)})
    w.models.outputs["image-quality@1.2.0"] = per_instance([0.9] * 50 + [0.2] * 10, quality_outputs)
    completed = acme_exam(w, 60)
    exams.infer_exam(w.deps, w.work, completed, "event-1")
    faults = [None] * 50 + ["motion_blur"] * 10
    labels = [
        expert_label(i.sop_instance_uid, f)
        for i, f in zip(completed.instances, faults, strict=True)
    ]
    validation.record_quality_labels(w.deps, EXPERT, labels)
    (device,) = shadow.compare_served_versions(w.deps, ADMIN, "image-quality").devices
    assert device.recommendations == (
        "image-quality 1.2.0 on acme medical / pocket two: promotion would meet the card's "
        "thresholds on live expert labels",
    )
    served = next(f for f in device.versions if f.stage == "serving")
    assert served.false_rescan_rate == 1.0


def test_probe_health_counts_only_dead_elements_as_a_fault():
    w = with_shadows(**{"probe-health@1.1.0": probe_outputs(0.9)})
    completed = acme_exam(w, 2)
    exams.infer_exam(w.deps, w.work, completed, "event-1")
    uids = [i.sop_instance_uid for i in completed.instances]
    labels = [expert_label(uids[0], "low_gain"), expert_label(uids[1], "dead_elements")]
    validation.record_quality_labels(w.deps, EXPERT, labels)
    (device,) = shadow.compare_served_versions(w.deps, ADMIN, "probe-health").devices
    figures = {f.version: f for f in device.versions}
    # Low gain is clean for probe health: the shadow's flag on it is a false alarm.
    assert (figures["1.1.0"].false_rescans, figures["1.1.0"].faults_caught) == (1, 1)
    assert (figures["1.0.0"].false_rescans, figures["1.0.0"].faults_caught) == (0, 0)


def test_only_admins_compare_and_only_gating_models():
    w = with_shadows()
    with pytest.raises(Forbidden):
        shadow.compare_served_versions(w.deps, EXPERT, "image-quality")
    with pytest.raises(InvalidInput):
        shadow.compare_served_versions(w.deps, ADMIN, "kidney")
    assert shadow.compare_served_versions(w.deps, ADMIN, "image-quality").devices == ()
