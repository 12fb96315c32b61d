"""The demo scenario on each edition, checked fact by fact through the public REST APIs."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import highdicom as hd
import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient

from sonobridge.api.events.v1 import topics
from sonobridge.lab import hc18
from sonobridge.node.demo import ScenarioRun, run_scenario
from sonobridge.node.flow import EventWatch, Trail
from sonobridge.node.scenario import demo_exams

pytestmark = pytest.mark.e2e
HAS_HC18 = (hc18.DEFAULT_ROOT / "hc18.csv").exists()


@pytest.fixture(scope="module")
def run(edition: Any) -> Any:
    """Upload the scenario once per edition and follow it to the end."""
    watch = EventWatch(edition.bus, f"e2e-watch-{edition.name}-{os.getpid()}")
    lines: list[str] = []
    try:
        result = run_scenario(
            demo_exams(),
            edition.consortium,
            edition.issuer,
            edition.urls,
            watch=watch,
            printer=lines.append,
            timeout=180,
        )
        yield result, watch, lines
    finally:
        watch.close()


def _get(edition: Any, user: str, service: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{edition.urls[service]}{path}",
        params=params or None,
        headers={"Authorization": f"Bearer {edition.token(user)}"},
        timeout=30,
    )


def _trail(result: ScenarioRun, label_start: str) -> Trail:
    return next(t for t in result.trails if t.uploaded.plan.label.startswith(label_start))


def test_every_exam_reaches_the_end_the_scenario_expects(run: Any) -> None:
    result, _watch, lines = run
    assert result.finished, "\n".join(lines)
    assert result.problems == [], "\n".join(lines)
    assert len(result.trails) == 9 + HAS_HC18


@pytest.mark.skipif(not HAS_HC18, reason="no HC18 images in ../shared/datasets/hc18")
def test_the_pregnancy_check_prints_head_circumference_and_age_with_confidence(run: Any) -> None:
    result, _watch, lines = run
    trail = _trail(result, "pregnancy check")
    assert trail.read is not None and trail.read["worklist"] == "county-obstetric"
    ai = [line for line in lines if "[pregnancy check" in line and "AI:" in line]
    assert ai, "\n".join(lines)
    assert re.search(r"Fetal head circumference \d+\.\d+ mm \(confidence \d\.\d\d", ai[0]), ai[0]
    assert re.search(r"Gestational age by head circumference \d+\.\d+ wk", ai[0]), ai[0]


def test_ingest_shows_every_exam_completed_with_its_instances(edition: Any, run: Any) -> None:
    result, _watch, _lines = run
    for t in result.trails:
        body = _get(edition, t.uploaded.plan.operator, "ingest", f"/v1/exams/{t.uploaded.exam_id}")
        assert body.status_code == 200, body.text
        assert body.json()["state"] == "completed"
        assert body.json()["received_instance_count"] == len(t.uploaded.plan.instances)
        assert body.json()["study_instance_uid"] == t.study


def test_the_poor_quality_scan_asks_its_operator_to_rescan(edition: Any, run: Any) -> None:
    result, _watch, _lines = run
    poor = _trail(result, "kidney, gain far too low")
    assert poor.read is not None and poor.read["route"] == "rescan"
    feed = _get(edition, "nurse-west", "reporting", "/v1/notifications").json()["notifications"]
    mine = [n for n in feed if n["data"].get("study_instance_uid") == poor.study]
    assert [n["kind"] for n in mine] == ["rescan_requested"]
    assert mine[0]["data"]["advice"]


def test_the_thick_carotid_goes_to_the_vascular_expert_and_is_signed(
    edition: Any, run: Any
) -> None:
    result, _watch, _lines = run
    carotid = _trail(result, "carotid")
    assert carotid.read is not None and carotid.report is not None
    assert carotid.read["worklist"] == "county-vascular"
    quality = carotid.read["exam_quality"]
    assert quality["acceptable"] is True
    report = _get(edition, "dr-east", "reporting", f"/v1/reports/{carotid.report['report_id']}")
    assert report.status_code == 200, report.text
    assert "intima-media thickening" in report.text


def test_the_thyroid_nodule_raises_one_follow_up_alert_for_its_township(
    edition: Any, run: Any
) -> None:
    result, _watch, _lines = run
    thyroid = _trail(result, "thyroid")
    alerts = _get(edition, "dr-river", "reporting", "/v1/alerts").json()["alerts"]
    mine = [a for a in alerts if a["study_instance_uid"] == thyroid.study]
    assert len(mine) == 1
    assert mine[0]["institution_id"] == "township-river"
    assert "nodule" in mine[0]["matched_terms"]
    other_town = _get(edition, "dr-east", "reporting", "/v1/alerts").json()["alerts"]
    assert thyroid.study not in {a["study_instance_uid"] for a in other_town}


def test_the_probe_with_dead_elements_gets_one_ticket_for_the_engineer(
    edition: Any, run: Any
) -> None:
    _result, _watch, _lines = run
    tickets = _get(
        edition, "eng-zhao", "maintenance", "/v1/tickets", device_serial="PROBE-03C"
    ).json()["tickets"]
    assert len(tickets) == 1
    ticket = tickets[0]
    assert ticket["source"] == "probe_health"
    assert ticket["assignee"] == "eng-zhao"
    assert ticket["institution_id"] == "township-river"
    device = _get(edition, "eng-zhao", "maintenance", "/v1/devices/PROBE-03C").json()
    assert device["open_ticket_id"] == ticket["ticket_id"]
    healthy = _get(
        edition, "eng-zhao", "maintenance", "/v1/tickets", device_serial="PROBE-03L"
    ).json()["tickets"]
    assert healthy == []


def test_every_exam_produced_each_event_once(run: Any) -> None:
    result, watch, _lines = run
    expected_signed = sum(1 for t in result.trails if t.read and t.read["route"] != "rescan")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        seen = sum(watch.distinct(t.study, topics.REPORT_SIGNED) for t in result.trails)
        if seen >= expected_signed:
            break
        time.sleep(0.2)
    for t in result.trails:
        for topic in (topics.EXAM_COMPLETED, topics.INFERENCE_COMPLETED, topics.REPORT_ROUTED):
            assert watch.distinct(t.study, topic) == 1, (t.uploaded.plan.label, topic)
        signed = watch.distinct(t.study, topics.REPORT_SIGNED)
        assert signed == (0 if t.read and t.read["route"] == "rescan" else 1)


def _series(client: DICOMwebClient, study: str, modality: str, timeout: float = 60) -> list[Any]:
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


def _expert_dicomweb(edition: Any) -> DICOMwebClient:
    expert = edition.consortium.with_role("expert")[0].user
    return DICOMwebClient(
        url=f"{edition.urls['ingest']}/dicomweb",
        headers={"Authorization": f"Bearer {edition.token(expert)}"},
    )


def test_the_ai_run_is_a_measurement_report_in_the_exams_study_on_its_image(
    edition: Any, run: Any, tmp_path: Path
) -> None:
    result, _watch, _lines = run
    plan, client = _trail(result, "carotid").uploaded.plan, _expert_dicomweb(edition)
    study = plan.study_instance_uid
    sr = _only_instance(client, study, "SR")
    assert sr.StudyInstanceUID == study
    images = {
        i["00080018"]["Value"][0]
        for i in client.search_for_instances(study, search_filters={"Modality": "US"})
    }
    report = hd.sr.ComprehensiveSR.from_dataset(sr)
    measurements = [
        m for g in report.content.get_image_measurement_groups() for m in g.get_measurements()
    ]
    assert "carotid-far-wall-imt" in {m.name.value for m in measurements}
    outlined = 0
    for measurement in measurements:
        assert measurement.unit.scheme_designator == "UCUM"
        for scoord in measurement.referenced_coordinates:
            referenced = scoord.ContentSequence[0].ReferencedSOPSequence[0]
            assert referenced.ReferencedSOPInstanceUID in images
            outlined += 1
    assert outlined, "no measurement drawn on its image"
    if shutil.which("dsrdump"):
        path = tmp_path / "sr.dcm"
        sr.save_as(path, enforce_file_format=True)
        dumped = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True)
        assert dumped.returncode == 0 and "Imaging Measurement Report" in dumped.stdout


def test_the_ai_overlay_is_a_secondary_capture_in_the_exams_study(edition: Any, run: Any) -> None:
    result, _watch, _lines = run
    plan, client = _trail(result, "carotid").uploaded.plan, _expert_dicomweb(edition)
    sc = _only_instance(client, plan.study_instance_uid, "OT")
    assert sc.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert sc.pixel_array.ndim == 3 and sc.pixel_array.shape[2] == 3
    source = sc.SourceImageSequence[0].ReferencedSOPInstanceUID
    assert source in {pydicom.dcmread(io.BytesIO(d)).SOPInstanceUID for d in plan.instances}
