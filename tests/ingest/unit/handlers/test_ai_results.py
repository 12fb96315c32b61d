"""AI results as DICOM: an inference run becomes a TID 1500 SR and overlay captures, once."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from ingest.ingest_support import synthetic_instance
from ingest.unit.handlers.fakes import Fakes, fakes, operator
from PIL import Image
from pydicom.sr.codedict import codes

from sonobridge.api.events.v1 import events_pb2
from sonobridge.common.timestamps import timestamp
from sonobridge.ingest.adapters import messages
from sonobridge.ingest.adapters.ai_dicom import HighdicomAiRenderer
from sonobridge.ingest.adapters.codec import PydicomCodec
from sonobridge.ingest.domain.ai_results import derived_uid
from sonobridge.ingest.domain.model import Channel, is_valid_uid
from sonobridge.ingest.handlers.ai_results import store_ai_results
from sonobridge.ingest.handlers.instances import store_instance

STUDY = "1.2.826.0.1.3680043.8.498.1"
SOP = "1.2.826.0.1.3680043.8.498.1.1.1"
MODEL = ("kidney", "2.0.0")
PREFIX = f"derived/{STUDY}/kidney/2.0.0"
DONE = datetime(2026, 3, 1, 10, 30, 5, tzinfo=UTC)


@pytest.fixture
def f(tmp_path: Path) -> Fakes:
    world = fakes(tmp_path, max_instance_bytes=50_000_000)
    world.deps.codec = PydicomCodec()
    image = synthetic_instance(study=STUDY, sop=SOP, frames=3, rows=120, columns=160)
    with world.spooled(image) as spooled:
        store_instance(world.deps, operator(), spooled, channel=Channel.STOW)
    png = io.BytesIO()
    Image.fromarray(np.full((120, 160, 3), 40, np.uint8)).save(png, format="PNG")
    world.store.objects[f"{PREFIX}/kidney.png"] = png.getvalue()
    details = {
        "overlay_frame": {"sop_instance_uid": SOP, "frame_index": 2},
        "graphics": [
            {
                "local_code": "kidney-length",
                "graphic_type": "POLYLINE",
                "points": [[20.5, 30.5], [120.5, 90.5]],
                "sop_instance_uid": SOP,
                "frame_index": 2,
            }
        ],
    }
    body = {"module": MODEL[0], "version": MODEL[1], "findings": [], "details": details}
    world.store.objects[f"{PREFIX}/findings.json"] = json.dumps(body).encode()
    return world


def _finding(code: str, local: str, value: float | None, *, low: bool = False, **kw: str):
    finding = events_pb2.Finding(
        code=code,
        code_system=kw.pop("system", "urn:sonobridge:finding"),
        display=kw.pop("display", local),
        unit="mm" if value is not None else "",
        confidence=0.55 if low else 0.93,
        low_confidence=low,
        model_name=MODEL[0],
        model_version=MODEL[1],
        sop_instance_uid=SOP,
        attributes={"local_code": local, **kw},
    )
    if value is not None:
        finding.value = value
    return finding


def _event(inference_id: str = "inf-1") -> events_pb2.InferenceCompleted:
    return events_pb2.InferenceCompleted(
        context=events_pb2.ExamContext(study_instance_uid=STUDY, institution_id="east"),
        inference_id=inference_id,
        completed_at=timestamp(DONE),
        derived_object_keys=[f"{PREFIX}/kidney.png", f"{PREFIX}/findings.json"],
        findings=[
            _finding(
                "410668003",
                "kidney-length",
                101.4,
                system="http://snomed.info/sct",
                concept_display="Length",
                finding_site="64033007",
                finding_site_display="Kidney",
            ),
            _finding(
                "kidney-cortical-echogenicity-ratio",
                "kidney-cortical-echogenicity-ratio",
                1.3,
                low=True,
            ),
            _finding("kidney-not-measurable", "kidney-not-measurable", None, low=True),
        ],
    )


def _stored(f: Fakes, modality: str) -> list[pydicom.Dataset]:
    found = [
        pydicom.dcmread(io.BytesIO(data))
        for key, data in f.store.objects.items()
        if key.startswith(f"dicom/{STUDY}/") and key.endswith(".dcm")
    ]
    return [ds for ds in found if ds.Modality == modality]


def test_a_run_becomes_one_sr_and_one_overlay_capture_in_the_exams_study(f: Fakes) -> None:
    outcome = store_ai_results(f.deps, HighdicomAiRenderer(), messages.ai_result(_event()))
    assert outcome.report is not None and len(outcome.overlays) == 1
    (sr,) = _stored(f, "SR")
    (sc,) = _stored(f, "OT")
    source = _stored(f, "US")[0]
    for ds in (sr, sc):
        assert ds.StudyInstanceUID == STUDY
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID
        assert ds.PatientID == source.PatientID
        assert is_valid_uid(ds.SOPInstanceUID) and is_valid_uid(ds.SeriesInstanceUID)
    assert sr.SOPClassUID == pydicom.uid.ComprehensiveSRStorage
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == SOP
    assert sc.SourceImageSequence[0].ReferencedFrameNumber == 3
    assert sc.pixel_array.shape == (120, 160, 3)
    assert sr.ContentDate == "20260301" and sr.ContentTime == "103005"
    indexed = f.tables.instances[sr.SOPInstanceUID]
    assert indexed.received_via == "ai" and indexed.institution_id == "east"


def _scoord(measurement: hd.sr.Measurement) -> pydicom.Dataset:
    """Return the SCOORD a measurement is inferred from (where OHIF reads its geometry)."""
    (scoord,) = measurement.referenced_coordinates
    return scoord


def test_measurements_carry_code_ucum_unit_image_frame_and_outline(f: Fakes) -> None:
    store_ai_results(f.deps, HighdicomAiRenderer(), messages.ai_result(_event()))
    (sr,) = _stored(f, "SR")
    report = hd.sr.ComprehensiveSR.from_dataset(sr)
    groups = report.content.get_image_measurement_groups()
    (length,) = [g for g in groups if g.finding_sites]
    (num,) = length.get_measurements()
    assert num.name == codes.SCT.Length
    assert num.value == pytest.approx(101.4)
    assert num.unit == hd.sr.CodedConcept("mm", "UCUM", "millimeter")
    assert num.qualifier is None
    assert length.finding_sites[0].value.value == "64033007"
    assert length.finding_type.value == "410668003"
    # Cornerstone3D's adapter name: OHIF hydrates the group into its Length tool.
    assert length.tracking_identifier == "Cornerstone3DTools@^0.1.0:Length"
    scoord = _scoord(num)
    assert scoord.GraphicType == "POLYLINE"
    assert list(scoord.GraphicData) == [20.5, 30.5, 120.5, 90.5]
    ref = scoord.ContentSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == SOP and ref.ReferencedFrameNumber == 3


def test_low_confidence_and_unmeasurable_findings_are_qualified_never_plain_numbers(
    f: Fakes,
) -> None:
    store_ai_results(f.deps, HighdicomAiRenderer(), messages.ai_result(_event()))
    (sr,) = _stored(f, "SR")
    report = hd.sr.ComprehensiveSR.from_dataset(sr)
    groups = report.content.get_image_measurement_groups()
    low = next(m for g in groups for m in g.get_measurements() if m.name.value.endswith("ratio"))
    assert low.qualifier == codes.DCM.ValueIndeterminate
    # Without a figure, the evaluation is a TID 1410 group (a region OHIF can read).
    failed = [
        e
        for g in report.content.get_planar_roi_measurement_groups()
        for e in g.get_qualitative_evaluations()
        if "not-measurable" in e.name.value
    ]
    assert [e.value for e in failed] == [codes.DCM.MeasurementFailure]


def test_every_group_names_its_image_by_a_scoord_a_figure_without_outline_the_frame(
    f: Fakes,
) -> None:
    # OHIF 3.13 stops loading a report, viewport blank, at a group without any SCOORD.
    store_ai_results(f.deps, HighdicomAiRenderer(), messages.ai_result(_event()))
    (sr,) = _stored(f, "SR")
    report = hd.sr.ComprehensiveSR.from_dataset(sr)
    image_groups = report.content.get_image_measurement_groups()
    roi_groups = report.content.get_planar_roi_measurement_groups()
    assert len(image_groups) + len(roi_groups) == 3
    scoords = [_scoord(m) for g in image_groups for m in g.get_measurements()]
    scoords += [g.roi for g in roi_groups]
    assert len(scoords) == 3
    whole_frame = [0.0, 0.0, 160.0, 0.0, 160.0, 120.0, 0.0, 120.0, 0.0, 0.0]
    # The ratio (no outline drawn) and the failed measurement lie on the whole frame.
    assert [list(s.GraphicData) for s in scoords].count(whole_frame) == 2
    for scoord in scoords:
        ref = scoord.ContentSequence[0].ReferencedSOPSequence[0]
        assert ref.ReferencedSOPInstanceUID == SOP


def test_a_redelivered_run_stores_nothing_new(f: Fakes) -> None:
    first = store_ai_results(f.deps, HighdicomAiRenderer(), messages.ai_result(_event()))
    objects = dict(f.store.objects)
    again = store_ai_results(f.deps, HighdicomAiRenderer(), messages.ai_result(_event()))
    assert again.report is not None and again.report.duplicate
    assert all(o.duplicate for o in again.overlays)
    assert first.report is not None
    assert again.report.instance.sop_instance_uid == first.report.instance.sop_instance_uid
    assert f.store.objects == objects
    other = store_ai_results(f.deps, HighdicomAiRenderer(), messages.ai_result(_event("inf-2")))
    assert other.report is not None and not other.report.duplicate


def test_a_run_on_images_not_held_here_stores_nothing(f: Fakes) -> None:
    event = _event()
    for finding in event.findings:
        finding.sop_instance_uid = "1.2.3.4.5"
    event.derived_object_keys[:] = []
    outcome = store_ai_results(f.deps, HighdicomAiRenderer(), messages.ai_result(event))
    assert outcome.report is None and outcome.unreferenced == 3
    assert not _stored(f, "SR")


def test_derived_uids_are_valid_and_fixed_by_the_run_and_role() -> None:
    uid = derived_uid("inf-1", "sr")
    assert is_valid_uid(uid) and uid == derived_uid("inf-1", "sr")
    assert uid != derived_uid("inf-1", "sr-series") != derived_uid("inf-2", "sr")


@pytest.mark.skipif(shutil.which("dsrdump") is None, reason="dcmtk's dsrdump not installed")
def test_dcmtk_reads_the_stored_report(f: Fakes, tmp_path: Path) -> None:
    store_ai_results(f.deps, HighdicomAiRenderer(), messages.ai_result(_event()))
    (sr,) = _stored(f, "SR")
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    out = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True, check=True)
    assert "Comprehensive SR Document" in out.stdout
    assert '"Imaging Measurement Report"' in out.stdout
    assert "101.4" in out.stdout and "(mm,UCUM" in out.stdout
    assert "(POLYLINE," in out.stdout
    assert "E:" not in out.stderr


def test_derived_objects_join_the_study_but_not_the_exams_instances(f: Fakes) -> None:
    outcome = store_ai_results(f.deps, HighdicomAiRenderer(), messages.ai_result(_event()))
    assert outcome.report is not None
    assert outcome.report.exam_id is None
    assert outcome.report.instance.study_instance_uid == STUDY


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools' dciodvfy not installed")
def test_dciodvfy_finds_no_error_in_the_report_or_the_capture(f: Fakes, tmp_path: Path) -> None:
    store_ai_results(f.deps, HighdicomAiRenderer(), messages.ai_result(_event()))
    for modality in ("SR", "OT"):
        (ds,) = _stored(f, modality)
        path = tmp_path / f"{modality}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        verdict = out.stdout + out.stderr
        assert "Error" not in verdict, verdict
        assert ("ComprehensiveSR" if modality == "SR" else "SCImage") in verdict
