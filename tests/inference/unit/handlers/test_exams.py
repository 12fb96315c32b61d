"""The exam pipeline with fakes of the ports: one result and one event per exam and models."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from inference.unit.handlers.fakes import exam, png, report_dicom, world

from sonobridge.inference.domain.exams import CompletedExam, InferenceStatus, InvalidExam
from sonobridge.inference.handlers import exams
from sonobridge.inference.modules.base import ModuleFinding, ModuleFrame, ModuleOutput


@dataclass
class BrightnessModule:
    """A clinical module that measures mean brightness, or fails when told to."""

    name: str = "test-brightness"
    version: str = "0.1.0"
    exam_types: frozenset[str] = frozenset({"thyroid"})
    fail: bool = False

    def run(self, frames: Sequence[ModuleFrame]) -> ModuleOutput:
        if self.fail:
            raise RuntimeError("no gland found")
        first = frames[0]
        finding = ModuleFinding(
            code="TEST-1",
            code_system="urn:test",
            display="mean brightness",
            value=float(sum(f.pixels.mean() for f in frames) / len(frames)),
            unit="1",
            confidence=0.9,
            low_confidence=False,
            abnormal=False,
            sop_instance_uid=first.sop_instance_uid,
            attributes={"frames": str(len(frames)), "spacing": str(first.spacing_mm)},
        )
        return ModuleOutput(self.name, self.version, [finding], {"overlay.png": b"png"}, {})


def test_an_exam_is_recorded_once_with_its_event_and_derived_objects():
    w = world(acceptable=0.9, probe_score=0.1)
    completed = exam(w.store, [png(), png()])
    inference_id = exams.infer_exam(w.deps, w.work, completed, "event-1")
    (result,) = w.work.results.added
    assert w.work.published == [result] and result.inference_id == inference_id
    assert result.status is InferenceStatus.COMPLETED and result.error_message == ""
    assert result.exam_quality.acceptable and len(result.instance_quality) == 2
    assert result.key.model_versions == "image-quality@1.0.0,probe-health@1.0.0"
    assert result.source_event_id == "event-1" and result.started_at < result.completed_at
    assert not result.probe_health.suspected_fault
    assert result.probe_health.confidence == pytest.approx(0.9)
    assert result.derived_object_keys == (
        "derived/1.2.3/image-quality/1.0.0/quality.json",
        "derived/1.2.3/probe-health/1.0.0/probe-health.json",
    )
    quality_json = json.loads(w.store.objects[result.derived_object_keys[0]][0])
    assert [i["sop_instance_uid"] for i in quality_json["instances"]] == ["1.2.3.0", "1.2.3.1"]
    assert result.summary()["instances_analysed"] == 2


def test_a_redelivered_exam_is_not_inferred_twice():
    w = world()
    completed = exam(w.store, [png()])
    first = exams.infer_exam(w.deps, w.work, completed, "event-1")
    calls = len(w.models.calls)
    assert exams.infer_exam(w.deps, w.work, completed, "event-2") is None
    assert len(w.work.results.added) == 1 and len(w.work.published) == 1
    assert len(w.models.calls) == calls and first is not None


def test_a_result_analysed_concurrently_with_another_is_recorded_once():
    w = world()
    completed = exam(w.store, [png()])
    # Two deliveries both analyse before either records (the work runs outside transactions).
    first = exams.analyse_exam(w.deps, completed, "event-1", w.work.results.find)
    second = exams.analyse_exam(w.deps, completed, "event-2", w.work.results.find)
    assert first is not None and second is not None
    assert exams.record_result(w.work, first) == first.inference_id
    assert exams.record_result(w.work, second) is None
    assert len(w.work.results.added) == 1 and len(w.work.published) == 1


def test_the_result_id_is_the_same_for_the_same_exam_and_models():
    one, other = world(), world()
    a = exams.infer_exam(one.deps, one.work, exam(one.store, [png()]), "event-1")
    b = exams.infer_exam(other.deps, other.work, exam(other.store, [png()]), "event-9")
    assert a == b


@pytest.mark.parametrize(
    "broken",
    [
        CompletedExam("", "exam-1", "thyroid", "a", "p", ()),
        CompletedExam("1.2.3", "exam-1", "thyroid", "a", "p", ()),
    ],
)
def test_an_exam_without_a_study_or_instances_can_never_be_processed(broken):
    w = world()
    with pytest.raises(InvalidExam):
        exams.infer_exam(w.deps, w.work, broken, "event-1")
    assert w.work.results.added == []


def test_a_missing_instance_makes_the_run_partial_and_the_others_still_count():
    w = world()
    completed = exam(w.store, [png(), None])
    exams.infer_exam(w.deps, w.work, completed, "event-1")
    (result,) = w.work.results.added
    assert result.status is InferenceStatus.PARTIAL
    assert result.error_message.startswith("1.2.3.1: ")
    assert result.instances_analysed == 1
    assert w.count("sonobridge_inference_errors_total", model="image-quality", kind="instance")


def test_an_exam_of_reports_only_fails_with_no_derived_objects():
    w = world()
    exams.infer_exam(w.deps, w.work, exam(w.store, [report_dicom()]), "event-1")
    (result,) = w.work.results.added
    assert result.status is InferenceStatus.FAILED
    assert result.instances_without_pixels == 1 and result.derived_object_keys == ()
    assert not result.exam_quality.acceptable and result.probe_health.device_serial == "PROBE-1"


def test_dead_elements_suspected_by_the_probe_model_are_reported():
    w = world(probe_score=0.9)
    exams.infer_exam(w.deps, w.work, exam(w.store, [png()]), "event-1")
    health = w.work.results.added[0].probe_health
    assert health.suspected_fault and health.confidence == pytest.approx(0.9)


def test_a_poor_exam_is_as_good_as_its_worst_instance():
    w = world(acceptable=0.2, fault="lost_contact")
    exams.infer_exam(w.deps, w.work, exam(w.store, [png(), png()]), "event-1")
    quality = w.work.results.added[0].exam_quality
    assert not quality.acceptable and quality.reasons == ("lost_contact",)


def test_module_findings_carry_their_evidence_and_the_app_spacing():
    w = world()
    w.deps.modules = [BrightnessModule(), BrightnessModule(name="cardiac", exam_types=frozenset())]
    completed = exam(w.store, [png(100), png(200)], spacing=(0.2, 0.3))
    exams.infer_exam(w.deps, w.work, completed, "event-1")
    (result,) = w.work.results.added
    (finding,) = result.findings
    prefix = "derived/1.2.3/test-brightness/0.1.0/"
    assert finding.evidence_object_keys == (f"{prefix}findings.json", f"{prefix}overlay.png")
    assert finding.value == pytest.approx(150) and finding.attributes["frames"] == "2"
    assert finding.attributes["spacing"] == "(0.2, 0.3)" and not finding.low_confidence
    assert [m.name for m in result.models] == ["image-quality", "probe-health", "test-brightness"]
    assert "test-brightness@0.1.0" in result.key.model_versions
    assert all(k in w.store.objects for k in result.derived_object_keys)


def test_findings_on_frames_the_quality_model_rejected_all_go_to_an_expert():
    w = world(acceptable=0.1)
    w.deps.modules = [BrightnessModule()]
    exams.infer_exam(w.deps, w.work, exam(w.store, [png()]), "event-1")
    (finding,) = w.work.results.added[0].findings
    assert finding.low_confidence and finding.attributes["image_quality"] == "not acceptable"


def test_a_failing_module_makes_the_run_partial_and_keeps_the_other_modules():
    w = world()
    w.deps.modules = [BrightnessModule(name="broken", fail=True), BrightnessModule()]
    exams.infer_exam(w.deps, w.work, exam(w.store, [png()]), "event-1")
    (result,) = w.work.results.added
    assert result.status is InferenceStatus.PARTIAL
    assert result.error_message == "module broken: no gland found"
    assert [f.model_name for f in result.findings] == ["test-brightness"]
