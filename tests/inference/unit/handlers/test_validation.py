"""Validation per device model with fakes: shadow by default, promotion on a report, demotion."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hostile_dicom import swallowing
from inference.unit.handlers.fakes import exam, png, world
from prometheus_client import generate_latest

from sonobridge.common.auth import Principal
from sonobridge.common.problems import Forbidden
from sonobridge.inference.domain.quality import NOT_ASSESSED
from sonobridge.inference.domain.validation import (
    DeviceModel,
    ExpertLabel,
    PromotionRefused,
    ValidationState,
)
from sonobridge.inference.handlers import exams, quality, reports, validation
from sonobridge.lab.synthetic.dicom import SyntheticExamContext, ultrasound_dicom_bytes

ADMIN = Principal("admin-1", frozenset({"admin"}))
EXPERT = Principal("expert-1", frozenset({"expert"}))
NURSE = Principal("nurse-1", frozenset({"operator"}))
BUTTERFLY = DeviceModel.of("Butterfly Network", "Butterfly iQ")
STATE = "sonobridge_inference_validation_state"


def report(**overrides: Any) -> dict[str, Any]:
    """Return a validation report of image-quality 1.0.0 on the Butterfly that meets the card."""
    body: dict[str, Any] = {
        "device_model": {"manufacturer": "Butterfly Network", "model_name": "Butterfly iQ"},
        "model": {"name": "image-quality", "version": "1.0.0"},
        "n_frames": 60,
        "false_rescan_rate": 0.05,
        "fault_catch_rate": 0.9,
    }
    return {**body, **overrides}


def dicom(manufacturer: str, model_name: str) -> bytes:
    """Return a one-frame ultrasound DICOM naming its device."""
    frame = np.full((1, 32, 32), 90, np.uint8)
    context = SyntheticExamContext(manufacturer=manufacturer, model_name=model_name)
    return ultrasound_dicom_bytes(frame, (0.2, 0.2), context=context)


def label(uid: str, *, flagged: bool, fault: str | None = None) -> ExpertLabel:
    """Return an expert label of an instance of the Butterfly."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return ExpertLabel("image-quality", BUTTERFLY, uid, fault, flagged, "expert-1", at)


def test_device_model_names_ignore_case_and_whitespace():
    assert DeviceModel.of("  Butterfly   NETWORK ", "Butterfly iQ\t") == BUTTERFLY
    assert BUTTERFLY.key == "butterfly network / butterfly iq"


def test_an_unvalidated_device_is_shadow_and_never_asks_for_a_rescan():
    w = world(acceptable=0.1, state=None)
    check, _ = quality.check_image_quality(w.deps, png(), "image/png")
    a = check.assessment
    assert a.acceptable and a.reasons == () and a.advice == NOT_ASSESSED
    assert a.validation == "shadow" and a.model_acceptable is False
    # The model's own verdict is still counted and kept.
    assert not check.verdict.acceptable
    unknown = {"model": "image-quality", "device_model": "unknown"}
    assert w.count(STATE, **unknown, state="shadow") == 1.0
    assert w.count(STATE, **unknown, state="gating") == 0.0


def test_the_generators_device_gates_as_its_card_says():
    w = world(acceptable=0.1, state=None)
    data = dicom("SonoBridge Synthetic", "handheld  synthetic probe")
    check, _ = quality.check_image_quality(w.deps, data, "application/dicom")
    assert check.validation == "gating" and not check.assessment.acceptable
    assert check.assessment.reasons == ("low_gain",)


def test_the_apps_device_counts_only_when_the_dicom_names_none():
    w = world(acceptable=0.1, state=None)
    w.validations.states[("image-quality", BUTTERFLY)] = validation.DeviceValidation(
        "image-quality", BUTTERFLY, ValidationState.ADVISORY
    )
    check, _ = quality.check_image_quality(
        w.deps, png(), "image/png", manufacturer="butterfly network", model_name="Butterfly iQ"
    )
    a = check.assessment
    assert a.validation == "advisory" and a.acceptable and a.reasons == ("low_gain",)
    assert a.advice.startswith("advice, not validated for this device")


def test_a_shadow_exam_neither_recalls_nor_reports_a_probe_fault():
    w = world(acceptable=0.1, probe_score=0.9, state=None)
    exams.infer_exam(w.deps, w.work, exam(w.store, [png(), png()]), "event-1")
    result = w.work.published[0]
    assert result.exam_quality.acceptable and result.exam_quality.validation == "shadow"
    assert result.exam_quality.model_acceptable is False
    health = result.probe_health
    assert not health.suspected_fault and health.dead_element_fraction == 0.0
    assert health.model_suspected_fault and health.validation == "shadow"


def test_a_report_meeting_the_card_promotes_and_is_recorded():
    w = world(state=None)
    change = validation.promote_device_model(w.deps, ADMIN, report(), reason="site trial")
    assert (change.from_state, change.to_state) == (ValidationState.SHADOW, ValidationState.GATING)
    assert (
        change.actor == "admin-1" and "site trial" in change.reason and "60 frames" in change.reason
    )
    assert w.validations.changes == [change]
    stored = validation.list_validations(w.deps)
    assert [(v.device, v.state) for v in stored] == [(BUTTERFLY, ValidationState.GATING)]
    assert w.count(STATE, model="image-quality", device_model=BUTTERFLY.key, state="gating") == 1
    changes = "sonobridge_inference_validation_state_changes_total"
    labels = {"from_state": "shadow", "to_state": "gating", "trigger": "promotion"}
    assert w.count(changes, model="image-quality", **labels) == 1


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"n_frames": 49}, "at least 50"),
        ({"false_rescan_rate": 0.2}, "false-rescan rate"),
        ({"fault_catch_rate": 0.5}, "fault catch rate"),
        ({"model": {"name": "image-quality", "version": "0.9.0"}}, "is served"),
    ],
)
def test_a_report_short_of_the_card_is_refused(overrides, why):
    w = world(state=None)
    with pytest.raises(PromotionRefused, match=why):
        validation.promote_device_model(w.deps, ADMIN, report(**overrides))
    assert w.validations.changes == []


def test_only_admins_promote():
    w = world(state=None)
    with pytest.raises(Forbidden):
        validation.promote_device_model(w.deps, NURSE, report())


def test_false_rescans_over_the_window_demote_a_gating_device_to_advisory():
    w = world(state=None)
    validation.promote_device_model(w.deps, ADMIN, report())
    # Card window: 10 labels, at least 4 clean, at most 25% false rescans.
    calm = [label(f"u{i}", flagged=False) for i in range(3)] + [label("f0", flagged=True)]
    assert validation.record_quality_labels(w.deps, EXPERT, calm) == []
    noisy = [label(f"f{i}", flagged=True) for i in range(1, 3)]
    changes = validation.record_quality_labels(w.deps, EXPERT, noisy)
    assert [(c.from_state, c.to_state) for c in changes] == [
        (ValidationState.GATING, ValidationState.ADVISORY)
    ]
    assert "false-rescan rate 0.500" in changes[0].reason and changes[0].actor == "expert-1"
    check, _ = quality.check_image_quality(
        w.deps, png(), "image/png", manufacturer="Butterfly Network", model_name="Butterfly iQ"
    )
    assert check.validation == "advisory"


def test_caught_faults_are_not_false_rescans():
    w = world(state=None)
    validation.promote_device_model(w.deps, ADMIN, report())
    caught = [label(f"c{i}", flagged=True, fault="low_gain") for i in range(8)]
    clean = [label(f"u{i}", flagged=False) for i in range(4)]
    assert validation.record_quality_labels(w.deps, EXPERT, caught + clean) == []


def test_operators_cannot_label():
    w = world(state=None)
    with pytest.raises(Forbidden):
        validation.record_quality_labels(w.deps, NURSE, [label("u1", flagged=False)])


def test_the_report_counts_false_rescans_on_clean_frames_and_caught_faults():
    w = world(acceptable=0.1, state=None)
    frames = [reports.LabelledFrame(f"c{i}", png(), None) for i in range(3)]
    frames += [reports.LabelledFrame("g", png(), "low_gain")]
    body = reports.report_validation(w.deps, "image-quality", BUTTERFLY, frames)
    assert (body["n_frames"], body["n_clean"], body["n_faulty"]) == (4, 3, 1)
    assert body["false_rescan_rate"] == 1.0 and body["fault_catch_rate"] == 1.0
    assert body["model"] == {"name": "image-quality", "version": "1.0.0"}
    # The report reads back as the promotion use case expects it.
    refused = "false-rescan rate 1.000 above"
    with pytest.raises(PromotionRefused, match=refused):
        validation.promote_device_model(w.deps, ADMIN, {**body, "n_frames": 100})


def test_probe_health_reports_only_dead_elements_as_faults():
    w = world(probe_score=0.9, state=None)
    frames = [
        reports.LabelledFrame("a", png(), None),
        reports.LabelledFrame("b", png(), "low_gain"),
        reports.LabelledFrame("c", png(), "dead_elements"),
    ]
    body = reports.report_validation(w.deps, "probe-health", BUTTERFLY, frames)
    assert (body["n_clean"], body["n_faulty"]) == (2, 1)
    assert body["false_rescan_rate"] == 1.0 and body["fault_catch_rate"] == 1.0


def test_device_text_that_is_not_printable_names_no_device():
    swallowed = "Acme\x10\x00\x10\x00PN\x14\x00QUIXOTRIX^ZEBULONIA"
    assert DeviceModel.of(swallowed, "Probe") == DeviceModel.of("", "")
    assert DeviceModel.of("Acme", "Probe\x7f").key == "unknown"
    assert DeviceModel.of("Acme", "Probe\u200b").key == "unknown"  # a format character
    # Stored before this rule, or read back from a table: the same text is no device either.
    assert DeviceModel(swallowed.casefold(), "probe").key == "unknown"
    assert DeviceModel.of_key(f"{swallowed} / probe").key == "unknown"


def test_device_text_is_cut_at_the_length_dicom_allows():
    device = DeviceModel.of("A" * 300, "B" * 65)
    assert device.manufacturer == "a" * 64 and device.model_name == "b" * 64


def test_a_dicom_whose_manufacturer_swallowed_the_patient_is_an_unknown_device_in_shadow():
    w = world(acceptable=0.1, state=None)
    w.validations.states[("image-quality", BUTTERFLY)] = validation.DeviceValidation(
        "image-quality", BUTTERFLY, ValidationState.GATING
    )
    data = swallowing(dicom("Butterfly Network", "Butterfly iQ"))
    check, _ = quality.check_image_quality(w.deps, data, "application/dicom")
    assert check.device_model == "unknown" and check.validation == "shadow"
    assert check.assessment.acceptable and check.assessment.reasons == ()
    exported = generate_latest(w.registry).decode()
    assert 'device_model="unknown"' in exported
    assert not any(needle in exported for needle in ("SYNTHETIC", "SYN-0001"))
