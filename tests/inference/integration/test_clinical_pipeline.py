"""Clinical modules in the exam pipeline on single-node adapters: ExamCompleted for a carotid, a
kidney and a thyroid exam gives InferenceCompleted with coded measurements, units, confidence,
model versions, low-confidence labels and overlays that mark where each was measured."""

from __future__ import annotations

import hashlib
import io
import json
import re

import numpy as np
import pytest
from inference.inference_support import exam_spec, store_exam, wait_for
from PIL import Image
from pydicom import dcmread
from scipy import ndimage

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import EXAM_COMPLETED, INFERENCE_COMPLETED
from sonobridge.common.bus.ports import publish
from sonobridge.common.envelope import unpack, wrap
from sonobridge.common.objects.ports import read_all
from sonobridge.inference.modules.common import MODELS_DIR
from sonobridge.lab.synthetic import generate_exam

FRAMES = 4
# Seeds chosen once from the generator: a thickened carotid (IMT about 1.2 mm), a carotid with
# IMT close to the 0.9 mm threshold (an uncertain call), a kidney and a thyroid solid nodule.
EXAMS = {
    "carotid": {"exam_type": "carotid", "seed": 506, "size": 384},
    "carotid-borderline": {"exam_type": "carotid", "seed": 502, "size": 384},
    "kidney": {"exam_type": "kidney", "seed": 2108, "size": 256, "n_lesions": 0},
    "thyroid": {"exam_type": "thyroid", "seed": 3104, "size": 256, "n_lesions": 1},
    # Every frame too dark to read: measured anyway, but every finding goes to an expert.
    "kidney-low-gain": {
        "exam_type": "kidney",
        "seed": 2108,
        "size": 256,
        "n_lesions": 0,
        "faults": ("low_gain",),
    },
}
MODULE_OF = {
    "carotid": "carotid-imt",
    "carotid-borderline": "carotid-imt",
    "kidney": "kidney",
    "thyroid": "focal-lesions",
    "kidney-low-gain": "kidney",
}
CAPTION_ROWS = 16


def _card(name: str) -> dict:
    return json.loads((MODELS_DIR / name / "1.0.0" / "card.json").read_text())


@pytest.fixture(scope="module")
def completed(service):
    """Publish every exam once and collect its InferenceCompleted."""
    exams = {
        label: store_exam(
            service.store,
            instances=1,
            frames=FRAMES,
            exam_type=o["exam_type"],
            seed=o["seed"],
            size=o["size"],
            n_lesions=o.get("n_lesions"),
            faults=o.get("faults", ()),
        )
        for label, o in EXAMS.items()
    }
    by_study = {e.context.study_instance_uid: label for label, e in exams.items()}
    sub = service.bus.subscribe("test-clinical-pipeline", [INFERENCE_COMPLETED])
    for exam in exams.values():
        study = exam.context.study_instance_uid
        publish(service.bus, EXAM_COMPLETED, wrap(exam, source="ingest", key=study))
    done: dict[str, events_pb2.InferenceCompleted] = {}

    def all_done() -> bool:
        for record in sub.poll(0.5):
            message = unpack(record.cloud_event())
            label = by_study.get(message.context.study_instance_uid)
            if label:
                done[label] = message
        return len(done) == len(exams)

    wait_for(all_done, timeout=240)
    return {label: (exams[label], done[label]) for label in exams}


def _truth(label: str, frame_index: int):
    o = EXAMS[label]
    spec = exam_spec(
        o["exam_type"], o.get("faults", ()), size=o["size"], n_lesions=o.get("n_lesions")
    )
    return generate_exam(o["seed"], spec, FRAMES).frames[frame_index].truth


def _findings(event, module: str) -> dict[str, events_pb2.Finding]:
    """Return a module's findings by local code (the event code is SNOMED CT where one exists)."""
    return {f.attributes["local_code"]: f for f in event.findings if f.model_name == module}


def _mark_and_source(service, exam, event, label: str):
    """Return (changed-pixel mask of the overlay vs its source frame, findings.json, frame)."""
    module = MODULE_OF[label]
    study = exam.context.study_instance_uid
    prefix = f"derived/{study}/{module}/1.0.0/"
    overlay_key, findings_key = f"{prefix}{module}.png", f"{prefix}findings.json"
    assert {overlay_key, findings_key} <= set(event.derived_object_keys)
    doc = json.loads(read_all(service.store, findings_key))
    where = doc["details"].get("overlay_frame") or doc["details"]["key_frame"]
    (ref,) = exam.instances
    assert where["sop_instance_uid"] == ref.sop_instance_uid
    source = dcmread(io.BytesIO(read_all(service.store, ref.object_key))).pixel_array
    frame = source[where["frame_index"]].astype(int)
    rgb = np.asarray(Image.open(io.BytesIO(read_all(service.store, overlay_key))).convert("RGB"))
    assert rgb.shape[:2] == frame.shape
    changed = (np.abs(rgb.astype(int) - frame[..., None]) > 0).any(axis=2)
    changed[:CAPTION_ROWS] = False
    return changed, doc, where["frame_index"]


def _marks_region(changed: np.ndarray, region: np.ndarray) -> None:
    # The measured region carries marks, and marks are far denser there than elsewhere.
    region = region.copy()
    region[:CAPTION_ROWS] = False
    inside = changed[region]
    outside = changed[~region]
    assert inside.sum() >= 20, inside.sum()
    assert inside.mean() > 5 * max(outside.mean(), 1e-4), (inside.mean(), outside.mean())


def test_every_exam_completes_with_the_module_for_its_exam_type_and_its_version(completed):
    for label, (_, event) in completed.items():
        module = MODULE_OF[label]
        assert event.status == events_pb2.INFERENCE_STATUS_COMPLETED, event.error_message
        refs = {m.name: m for m in event.models}
        assert set(refs) == {"image-quality", "probe-health", "view-check", module}
        assert refs[module].version == "1.0.0"
        # The view check routed every frame of these exams to the module of their anatomy.
        assert all(f.attributes["view"] != "other" for f in event.findings), label
        assert refs[module].sha256 == (_card(module)["sha256"] or "")
        assert all(f.model_name == module and f.model_version == "1.0.0" for f in event.findings)
    # Networks are identified by hash; the carotid module is measurement only (no network).
    assert len(completed["kidney"][1].models[-1].sha256) == 64
    assert completed["carotid"][1].models[-1].sha256 == ""


def test_carotid_exam_reports_thickened_imt_in_mm_and_the_overlay_marks_the_far_wall(
    service, completed
):
    exam, event = completed["carotid"]
    found = _findings(event, "carotid-imt")
    imt, plaque = found["carotid-far-wall-imt"], found["carotid-plaque"]
    changed, doc, frame_index = _mark_and_source(service, exam, event, "carotid")
    truth = _truth("carotid", frame_index)
    carotid = truth.anatomy["carotid"]
    assert imt.unit == "mm" and imt.HasField("value")
    assert abs(imt.value - carotid["imt_mm"]) < 0.2
    assert imt.abnormal and imt.attributes["thickened"] == "true"
    assert imt.attributes["threshold_mm"] == "0.9"
    assert 0.8 <= imt.confidence <= 1.0 and not imt.low_confidence
    assert plaque.unit == "mm" and not plaque.abnormal
    # IMT has no SNOMED CT concept: local code, coded site; an absent plaque keeps the local code.
    assert (imt.code_system, imt.code) == ("urn:sonobridge:finding", "carotid-far-wall-imt")
    assert imt.attributes["finding_site"] == "32062004"
    assert (plaque.code_system, plaque.code) == ("urn:sonobridge:finding", "carotid-plaque")
    # The far wall: from the lumen-intima interface down through the adventitia.
    lumen = carotid["lumen_mask"]
    row_mm = truth.pixel_spacing_mm[0]
    rows = np.arange(lumen.shape[0])[:, None]
    li = np.where(lumen.any(axis=0), lumen.shape[0] - 1 - np.argmax(lumen[::-1], axis=0), -1)
    band = (rows >= li - 3) & (rows <= li + (carotid["max_imt_mm"] + 1.0) / row_mm + 3)
    band &= lumen.any(axis=0)[None, :]
    band[:, :4] = False
    changed[:, :4] = False  # the lumen marker along the left edge
    _marks_region(changed, band)
    assert doc["findings"][0]["value"] == imt.value


def test_kidney_exam_reports_length_and_echogenicity_and_the_overlay_outlines_the_kidney(
    service, completed
):
    exam, event = completed["kidney"]
    found = _findings(event, "kidney")
    length = found["kidney-length"]
    echo = found["kidney-cortical-echogenicity-ratio"]
    changed, _, frame_index = _mark_and_source(service, exam, event, "kidney")
    truth = _truth("kidney", frame_index)
    kidney = truth.anatomy["kidney"]
    assert length.unit == "mm" and length.HasField("value")
    assert abs(length.value - kidney["length_mm"]) < 30
    assert 0.5 <= length.confidence <= 1.0
    assert length.attributes["threshold_mm"] == "90.0"
    assert (length.code_system, length.code) == ("http://snomed.info/sct", "410668003")
    assert length.attributes["finding_site"] == "64033007"
    assert echo.unit == "1" and echo.value > 0 and 0.5 <= echo.confidence <= 1.0
    px = float(np.mean(truth.pixel_spacing_mm))
    near = ndimage.binary_dilation(kidney["mask"], iterations=round(8 / px))
    _marks_region(changed, near)


def test_thyroid_exam_reports_a_solid_nodule_in_mm_and_the_overlay_outlines_it(service, completed):
    exam, event = completed["thyroid"]
    found = _findings(event, "focal-lesions")
    count = found["focal-lesion-count"]
    assert count.unit == "{count}" and count.value >= 1 and count.abnormal
    # Lesion findings come largest first; the true nodule is the largest one reported.
    nodule = found["focal-lesion-solid"]
    assert (nodule.code_system, nodule.code) == ("http://snomed.info/sct", "237495005")
    assert nodule.attributes["finding_site"] == "69748006"
    assert nodule.attributes["concept_display"] == "Thyroid nodule"
    assert count.code == "246206008"
    assert nodule.attributes["index"] == "1"
    changed, _, frame_index = _mark_and_source(service, exam, event, "thyroid")
    truth = _truth("thyroid", frame_index)
    (lesion,) = truth.anatomy["lesions"]
    assert lesion["kind"].startswith("solid")
    assert nodule.unit == "mm" and nodule.attributes["kind"] == "solid"
    assert abs(nodule.value - lesion["diameter_mm"]) < 0.35 * lesion["diameter_mm"]
    assert re.fullmatch(r"Focal lesion 1: nodule \d+ mm, solid", nodule.display)
    assert 0.0 < nodule.confidence <= 1.0
    px = float(np.mean(truth.pixel_spacing_mm))
    near = ndimage.binary_dilation(lesion["mask"], iterations=round(2 / px))
    _marks_region(changed, near)


def test_uncertain_calls_are_labelled_low_confidence_by_each_cards_threshold(completed):
    for label, (_, event) in completed.items():
        module = MODULE_OF[label]
        threshold = _card(module)["thresholds"]["low_confidence_below"]
        for f in event.findings:
            at_edge = "true" in (
                f.attributes.get("cut_off_by_image_edge"),
                f.attributes.get("at_image_edge"),
            )
            unreadable = f.attributes.get("image_quality") == "not acceptable"
            assert f.low_confidence == (f.confidence < threshold or at_edge or unreadable), (
                label,
                f.code,
            )
            assert unreadable == (label == "kidney-low-gain"), (label, f.code)
    # IMT near the 0.9 mm threshold: the thickening call is a coin flip and goes to an expert.
    borderline = _findings(completed["carotid-borderline"][1], "carotid-imt")
    imt = borderline["carotid-far-wall-imt"]
    assert imt.low_confidence and imt.confidence < 0.8
    assert abs(imt.value - 0.9) < 0.1


def test_findings_on_an_exam_with_no_readable_frame_all_go_to_an_expert(service, completed):
    exam, event = completed["kidney-low-gain"]
    assert not event.exam_quality.acceptable
    found = _findings(event, "kidney")
    assert found and all(f.low_confidence for f in found.values())
    assert all(f.attributes["image_quality"] == "not acceptable" for f in found.values())
    _, doc, _ = _mark_and_source(service, exam, event, "kidney-low-gain")
    assert doc["details"]["all_frames_below_quality"] is True
    # The readable twin of this exam measured every frame: nothing was skipped.
    _, readable_doc, _ = _mark_and_source(service, *completed["kidney"], "kidney")
    assert readable_doc["details"]["all_frames_below_quality"] is False
    assert readable_doc["details"]["frames_skipped_for_quality"] == 0


def _without_calibration(service, exam: events_pb2.ExamCompleted, app_spacing=None):
    """Return a copy of the exam whose DICOM carries no spacing, with the app's if given."""
    exam = events_pb2.ExamCompleted.FromString(exam.SerializeToString())
    exam.context.study_instance_uid = exam.context.study_instance_uid + ".9"
    for ref in exam.instances:
        ds = dcmread(io.BytesIO(read_all(service.store, ref.object_key)))
        for keyword in ("SequenceOfUltrasoundRegions", "PixelSpacing"):
            if keyword in ds:
                delattr(ds, keyword)
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        data = buffer.getvalue()
        ref.object_key = ref.object_key.replace(".dcm", ".uncalibrated.dcm")
        service.store.put(ref.object_key, io.BytesIO(data), length=len(data))
        ref.sha256, ref.size_bytes = hashlib.sha256(data).hexdigest(), len(data)
        if app_spacing:
            ref.app_pixel_spacing.row_mm, ref.app_pixel_spacing.column_mm = app_spacing
    return exam


def test_the_calibration_the_app_sent_measures_an_image_whose_dicom_has_none(service, completed):
    exam, calibrated = completed["carotid"]
    spacing = _truth("carotid", 0).pixel_spacing_mm
    with_app = _without_calibration(service, exam, spacing)
    without = _without_calibration(service, exam)
    without.context.study_instance_uid += ".1"
    sub = service.bus.subscribe("test-app-calibration", [INFERENCE_COMPLETED])
    wanted = {e.context.study_instance_uid: e for e in (with_app, without)}
    for e in wanted.values():
        key = e.context.study_instance_uid
        publish(service.bus, EXAM_COMPLETED, wrap(e, source="ingest", key=key))
    done: dict[str, events_pb2.InferenceCompleted] = {}

    def both_done() -> bool:
        for record in sub.poll(0.5):
            message = unpack(record.cloud_event())
            if message.context.study_instance_uid in wanted:
                done[message.context.study_instance_uid] = message
        return len(done) == 2

    wait_for(both_done, timeout=240)
    measured = _findings(done[with_app.context.study_instance_uid], "carotid-imt")
    reference = _findings(calibrated, "carotid-imt")["carotid-far-wall-imt"]
    # Same pixels, same spacing (from the app instead of the DICOM): the same measurement.
    assert measured["carotid-far-wall-imt"].value == pytest.approx(reference.value, abs=1e-6)
    unmeasured = _findings(done[without.context.study_instance_uid], "carotid-imt")
    (finding,) = unmeasured.values()
    assert finding.attributes["local_code"] == "carotid-imt-not-measurable"
    assert finding.attributes["reason"] == "no pixel spacing" and finding.low_confidence
