"""An uploaded exam's AI results come back as DICOM in its own study: QIDO lists, WADO returns."""

from __future__ import annotations

import io
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import highdicom as hd
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient

from sonobridge.node.scenario import PlannedExam, demo_exams
from sonobridge.node.township import TownshipApp

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
EXAM = "carotid with intima-media thickening"


@pytest.fixture(scope="module")
def uploaded(edition: Any) -> tuple[PlannedExam, DICOMwebClient]:
    """The carotid demo exam sent as the township app does; a county expert's DICOMweb client."""
    plan = next(e for e in demo_exams() if e.label == EXAM)
    with TownshipApp(edition.urls["ingest"], edition.token(plan.operator)) as app:
        app.send(plan)
    expert = edition.consortium.with_role("expert")[0].user
    client = DICOMwebClient(
        url=f"{edition.urls['ingest']}/dicomweb",
        headers={"Authorization": f"Bearer {edition.token(expert)}"},
    )
    return plan, client


def _series(client: DICOMwebClient, study: str, modality: str, timeout: float = 150) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = client.search_for_series(study, search_filters={"Modality": modality})
        if found or time.monotonic() > deadline:
            return found
        time.sleep(1)


def _only_instance(client: DICOMwebClient, study: str, modality: str) -> pydicom.Dataset:
    (series,) = _series(client, study, modality)
    series_uid = series["0020000E"]["Value"][0]
    (instance,) = client.search_for_instances(study, series_uid)
    return client.retrieve_instance(study, series_uid, instance["00080018"]["Value"][0])


def test_the_sr_of_the_exams_ai_run_is_in_its_study_with_each_measurement_on_the_image(
    uploaded: tuple[PlannedExam, DICOMwebClient], tmp_path: Path
) -> None:
    plan, client = uploaded
    study = plan.study_instance_uid
    sr = _only_instance(client, study, "SR")
    assert sr.StudyInstanceUID == study
    images = {
        i["00080018"]["Value"][0]
        for i in client.search_for_instances(study, search_filters={"Modality": "US"})
    }
    report = hd.sr.ComprehensiveSR.from_dataset(sr)
    groups = report.content.get_planar_roi_measurement_groups()
    assert groups, "no measurement group with an image region"
    names = {m.name.value for g in groups for m in g.get_measurements()}
    assert "carotid-far-wall-imt" in names
    for group in groups:
        for measurement in group.get_measurements():
            assert measurement.unit.scheme_designator == "UCUM"
        referenced = group.roi.ContentSequence[0].ReferencedSOPSequence[0]
        assert referenced.ReferencedSOPInstanceUID in images
    if shutil.which("dsrdump"):
        path = tmp_path / "sr.dcm"
        sr.save_as(path, enforce_file_format=True)
        dumped = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True)
        assert dumped.returncode == 0 and "Imaging Measurement Report" in dumped.stdout


def test_the_overlay_is_a_secondary_capture_of_the_same_study(
    uploaded: tuple[PlannedExam, DICOMwebClient],
) -> None:
    plan, client = uploaded
    sc = _only_instance(client, plan.study_instance_uid, "OT")
    assert sc.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert sc.pixel_array.ndim == 3 and sc.pixel_array.shape[2] == 3
    source = sc.SourceImageSequence[0].ReferencedSOPInstanceUID
    assert source in {pydicom.dcmread(io.BytesIO(d)).SOPInstanceUID for d in plan.instances}
