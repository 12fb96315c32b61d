"""Ingest on the real stack: Kafka, MinIO and PostgreSQL started by deploy/local/."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from ingest.ingest_support import (
    EXAM_COMPLETED,
    RunningIngest,
    app_upload,
    collect_events,
    new_exam,
    pydicom_file,
    running_ingest,
    synthetic_instance,
    tus_create,
    tus_patch,
    uids,
)
from pydicom.encaps import generate_frames
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import UltrasoundImageStorage  # type: ignore[attr-defined]

from sonobridge.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from sonobridge.common.bus.kafka import KafkaEventBus
from sonobridge.common.db import create_db_engine
from sonobridge.common.objects.minio import MinioObjectStore

pytestmark = pytest.mark.infra


@pytest.fixture
def stack_ingest(
    tmp_path: Path,
    issuer,
    kafka_bootstrap: str,
    minio_endpoint,
    pg_database: str,
    unique_bucket: str,
) -> Iterator[RunningIngest]:
    store = MinioObjectStore(
        minio_endpoint.endpoint,
        minio_endpoint.access_key,
        minio_endpoint.secret_key,
        unique_bucket,
    )
    store.ensure_bucket()
    bus = KafkaEventBus(kafka_bootstrap)
    engine = create_db_engine(pg_database)
    try:
        with running_ingest(tmp_path, issuer, bus=bus, store=store, engine=engine) as running:
            yield running
    finally:
        engine.dispose()
        bus.close()


def test_app_upload_completes_exam_on_kafka_minio_and_postgres(stack_ingest) -> None:
    data = pydicom_file("examples_ybr_color.dcm")
    study, series, sop = uids(data)
    with stack_ingest.client() as client:
        exam_id = new_exam(client)
        url = tus_create(client, exam_id, len(data))
        assert tus_patch(client, url, 0, data[:100_000]).status_code == 204
        assert tus_patch(client, url, 100_000, data[100_000:]).status_code == 204
        manifest = {
            "instances": [{"sop_instance_uid": sop, "sha256": hashlib.sha256(data).hexdigest()}]
        }
        done = client.post(f"/v1/exams/{exam_id}/complete", json=manifest)
    assert done.json()["state"] == "completed"
    assert stack_ingest.object_bytes(f"dicom/{study}/{series}/{sop}.dcm") == data
    events = collect_events(
        stack_ingest.bus,
        EXAM_COMPLETED,
        count=1,
        timeout=60,
        where=lambda e: e.context.exam_id == exam_id,
    )
    assert len(events) == 1 and events[0].instances[0].sha256 == hashlib.sha256(data).hexdigest()


def test_stow_and_wado_round_trip_and_malformed_leaves_nothing_on_the_real_stack(
    stack_ingest,
) -> None:
    data = pydicom_file("examples_jpeg2k.dcm")
    study, series, sop = uids(data)
    boundary = uuid.uuid4().hex
    headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}

    def body(payload: bytes) -> bytes:
        return (
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            + payload
            + f"\r\n--{boundary}--\r\n".encode()
        )

    with stack_ingest.client() as client:
        bad = client.post("/dicomweb/studies", content=body(data[:-4000]), headers=headers)
        assert bad.status_code == 409
        assert stack_ingest.stored_keys("dicom/") == []
        assert stack_ingest.count("instances") == 0
        good = client.post("/dicomweb/studies", content=body(data), headers=headers)
        assert good.status_code == 200, good.text
        wado = client.get(f"/dicomweb/studies/{study}/series/{series}/instances/{sop}")
        exam_id = new_exam(client)
        again = app_upload(client, exam_id, data)
    part = wado.content.split(b"\r\n\r\n", 1)[1]
    assert part.startswith(data)
    assert again.headers["SonoBridge-Duplicate"] == "true"


def test_frames_and_grpc_exam_state_on_the_real_stack(stack_ingest) -> None:
    data = pydicom_file("examples_ybr_color.dcm")
    study, series, sop = uids(data)
    with stack_ingest.client() as client:
        exam_id = new_exam(client)
        assert app_upload(client, exam_id, data).status_code == 204
    expected = list(
        generate_frames(pydicom.dcmread(io.BytesIO(data)).PixelData, number_of_frames=30)
    )
    dicomweb = DICOMwebClient(
        url=f"{stack_ingest.base_url}/dicomweb",
        headers={"Authorization": f"Bearer {stack_ingest.token()}"},
    )
    frames = dicomweb.retrieve_instance_frames(
        study, series, sop, frame_numbers=[1, 30], media_types=("image/jpeg",)
    )
    assert frames == [expected[0], expected[29]]
    channel = grpc.insecure_channel(f"127.0.0.1:{stack_ingest.host.app.state.grpc_port}")
    try:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        auth = (("authorization", f"Bearer {stack_ingest.token()}"),)
        exam = stub.GetExam(ingest_pb2.GetExamRequest(exam_id=exam_id), metadata=auth).exam
        listed = stub.ListExamInstances(
            ingest_pb2.ListExamInstancesRequest(exam_id=exam_id), metadata=auth
        )
    finally:
        channel.close()
    assert exam.state == ingest_pb2.EXAM_STATE_RECEIVING
    assert exam.received_instance_count == 1 and exam.received_bytes == len(data)
    assert [i.sop_instance_uid for i in listed.instances] == [sop]


def test_one_dataset_by_stow_then_c_store_is_a_duplicate_on_the_real_stack(stack_ingest) -> None:
    data = synthetic_instance(seed=5)
    study, series, sop = uids(data)
    stack_ingest.register_caller("PROBE1", "township-a")
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}
    with stack_ingest.client() as client:
        assert client.post("/dicomweb/studies", content=body, headers=headers).status_code == 200
    ae = AE(ae_title="PROBE1")
    ae.add_requested_context(UltrasoundImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", stack_ingest.dimse_port, ae_title="SONOBRIDGE")
    assert assoc.is_established
    try:
        # pynetdicom writes its own File Meta around the received dataset: not a conflict.
        status = assoc.send_c_store(pydicom.dcmread(io.BytesIO(data)))
    finally:
        assoc.release()
    assert status.Status == 0x0000
    assert stack_ingest.count("instances") == 1
    assert stack_ingest.object_bytes(f"dicom/{study}/{series}/{sop}.dcm") == data
