"""The demo's obstetric exam: a real HC18 head wrapped as DICOM with its spacing, or skipped."""

from __future__ import annotations

import io
from pathlib import Path

import grpc
import pytest
from pydicom import dcmread

from sonobridge.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from sonobridge.inference.modules.fetal_geometry import hadlock_ga_weeks
from sonobridge.lab import hc18
from sonobridge.node.cli import wait_ready
from sonobridge.node.consortium import demo_consortium
from sonobridge.node.edition import NodePorts, SingleNode
from sonobridge.node.scenario import demo_exams, hc18_exam
from sonobridge.node.township import TownshipApp

needs_hc18 = pytest.mark.skipif(
    not (hc18.DEFAULT_ROOT / "hc18.csv").exists(), reason="no HC18 in ../shared/datasets/hc18"
)


def test_without_hc18_the_demo_keeps_its_other_exams_and_has_no_obstetric_one(tmp_path: Path):
    assert hc18_exam(10, tmp_path) is None
    exams = demo_exams(hc18_root=tmp_path)
    assert len(exams) == 9 and all(e.exam_type != "obstetric" for e in exams)


@needs_hc18
def test_the_obstetric_exam_is_an_hc18_image_with_its_pixel_spacing():
    plan = hc18_exam(10)
    assert plan is not None and plan.exam_type == "obstetric"
    ds = dcmread(io.BytesIO(plan.instances[0]))
    name = plan.truth.split(":")[0].removeprefix("HC18 ")
    image = next(im for im in hc18.read_index() if im.filename == name)
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx([image.pixel_mm] * 2, rel=1e-5)
    assert (ds.pixel_array == image.pixels(hc18.DEFAULT_ROOT)).all()
    # A development-split image: the module never trained or calibrated on it.
    assert image in hc18.splits(hc18.read_index())["development"]


@needs_hc18
def test_the_obstetric_exam_dates_agree_with_the_experts_head_and_reach_ingest(tmp_path: Path):
    plan = hc18_exam(10)
    assert plan is not None and plan.app_gestational_age_weeks is not None
    head_hc = float(plan.truth.split("expert HC ")[1].split(" mm")[0])
    assert 10 <= plan.app_gestational_age_weeks <= 44
    assert plan.app_gestational_age_weeks == pytest.approx(hadlock_ga_weeks(head_hc), abs=1 / 7)
    consortium = demo_consortium()
    node = SingleNode(tmp_path, ports=NodePorts.ephemeral(), services=("ingest",))
    node.start()
    try:
        wait_ready(node)
        with TownshipApp(
            node.urls()["ingest"], consortium.token(node.issuer, plan.operator)
        ) as app:
            uploaded = app.send(plan)
        token = consortium.token(node.issuer, plan.operator)
        with grpc.insecure_channel(f"127.0.0.1:{node.hosts['ingest'].grpc_port}") as channel:
            listed = ingest_pb2_grpc.IngestServiceStub(channel).ListExamInstances(
                ingest_pb2.ListExamInstancesRequest(exam_id=uploaded.exam_id),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=30,
            )
    finally:
        node.stop()
    (ref,) = listed.instances
    assert ref.HasField("app_gestational_age_weeks")
    assert ref.app_gestational_age_weeks == pytest.approx(plan.app_gestational_age_weeks, abs=0.01)
