"""The real-time quality check: acceptable or rescan, the reason and the advice."""

from __future__ import annotations

import pytest
from inference.unit.handlers.fakes import png, world

from sonobridge.inference.domain.errors import InvalidImage
from sonobridge.inference.handlers import quality

CHECKS = "sonobridge_inference_quality_assessments_total"


def test_an_acceptable_frame_passes_with_no_reason_or_advice():
    w = world(acceptable=0.9)
    check, latency_ms = quality.check_image_quality(
        w.deps, png(), "image/png", institution="township-a", operator="nurse-1"
    )
    a = check.assessment
    assert a.acceptable and a.reasons == () and a.advice == ""
    assert a.score == pytest.approx(0.9) and check.model_version == "1.0.0"
    assert latency_ms >= 0
    labels = {"institution": "township-a", "operator": "nurse-1", "outcome": "acceptable"}
    assert w.count(CHECKS, **labels) == 1


def test_a_poor_frame_is_sent_back_with_the_likeliest_fault_and_what_to_do():
    w = world(acceptable=0.1, fault="lost_contact")
    check, _ = quality.check_image_quality(w.deps, png(), "image/png")
    a = check.assessment
    assert not a.acceptable and a.reasons == ("lost_contact",)
    assert "gel" in a.advice and a.confidence == pytest.approx(0.9)
    assert w.count(CHECKS, institution="", operator="", outcome="rescan") == 1


def test_a_frame_that_cannot_be_decoded_is_refused_and_not_counted_as_a_check():
    w = world()
    with pytest.raises(InvalidImage):
        quality.check_image_quality(w.deps, b"\x00" * 10, "application/dicom")
    assert w.count(CHECKS, institution="", operator="", outcome="rescan") == 0
