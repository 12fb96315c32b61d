"""The inference service on the cluster adapters: real Kafka, MinIO and PostgreSQL."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from inference.inference_support import store_exam, wait_for
from infra_fixtures import MinioEndpoint, unique_name
from sqlalchemy import func, select

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import EXAM_COMPLETED, INFERENCE_COMPLETED
from sonobridge.api.inference.v1 import inference_pb2, inference_pb2_grpc
from sonobridge.common.auth import LocalIssuer
from sonobridge.common.bus.kafka import KafkaEventBus
from sonobridge.common.bus.ports import publish
from sonobridge.common.db import create_db_engine
from sonobridge.common.envelope import unpack, wrap
from sonobridge.common.objects.minio import MinioObjectStore
from sonobridge.common.settings import GrpcSettings, HttpSettings
from sonobridge.inference.adapters import orm
from sonobridge.inference.bootstrap import build
from sonobridge.inference.settings import InferenceSettings, Settings

pytestmark = pytest.mark.infra


@pytest.fixture
def cluster_service(
    tmp_path: Path,
    issuer: LocalIssuer,
    kafka_bootstrap: str,
    minio_endpoint: MinioEndpoint,
    pg_database: str,
) -> Iterator[tuple[object, KafkaEventBus, MinioObjectStore, object]]:
    settings = Settings(
        data_dir=tmp_path,
        http=HttpSettings(host="127.0.0.1", port=0),
        grpc=GrpcSettings(host="127.0.0.1", port=0),
        inference=InferenceSettings(
            providers="CPUExecutionProvider", consumer_group=unique_name("inference")
        ),
    )
    bus = KafkaEventBus(kafka_bootstrap)
    store = MinioObjectStore(
        minio_endpoint.endpoint,
        minio_endpoint.access_key,
        minio_endpoint.secret_key,
        unique_name("inference"),
    )
    store.ensure_bucket()
    engine = create_db_engine(pg_database)
    host = build(settings, bus=bus, store=store, engine=engine, verifier=issuer.verifier())
    host.start()
    try:
        yield host, bus, store, engine
    finally:
        host.stop()
        engine.dispose()
        bus.close()


def _duplicates(http: httpx.Client) -> float:
    text = http.get("/metrics").text
    found = re.findall(
        r'sonobridge_inference_events_consumed_total\{outcome="duplicate",[^}]*\} ([0-9.]+)', text
    )
    return sum(float(v) for v in found)


def test_exam_on_kafka_and_minio_gets_one_result_in_postgresql(cluster_service, issuer):
    host, bus, store, engine = cluster_service
    http = httpx.Client(base_url=f"http://127.0.0.1:{host.http_port}", timeout=30)
    assert "models/image-quality/1.0.0/model.onnx" in set(store.list("models/"))
    checks = http.get("/readyz").json()["checks"]
    # The Kafka readiness probe lives in common and is checked by its own tests.
    assert checks["models"] == checks["database"] == checks["object_store"] == "up", checks

    with grpc.insecure_channel(f"127.0.0.1:{host.grpc_port}") as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        token = issuer.issue("svc", ["service"])
        got = stub.GetModel(
            inference_pb2.GetModelRequest(name="probe-health"),
            metadata=[("authorization", f"Bearer {token}")],
        )
        assert got.summary.loaded and got.summary.pinned

    exam = store_exam(store, exam_type="kidney", instances=2, seed=51)
    study = exam.context.study_instance_uid
    event = wrap(exam, source="ingest", key=study)
    publish(bus, EXAM_COMPLETED, event)
    sub = bus.subscribe(unique_name("check"), [INFERENCE_COMPLETED])
    seen: list[events_pb2.InferenceCompleted] = []

    def collect() -> list:
        for record in sub.poll(1.0):
            message = unpack(record.cloud_event())
            if message.context.study_instance_uid == study:
                seen.append(message)
        return seen

    wait_for(collect, timeout=180)
    assert seen[0].status == events_pb2.INFERENCE_STATUS_COMPLETED
    assert len(seen[0].instance_quality) == 2

    before = _duplicates(http)
    publish(bus, EXAM_COMPLETED, event)  # a redelivery: same event id
    wait_for(lambda: _duplicates(http) > before, timeout=120)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        collect()
    sub.close()
    assert len(seen) == 1
    t = orm.inference_results
    with engine.connect() as conn:
        rows = conn.execute(
            select(func.count()).select_from(t).where(t.c.study_instance_uid == study)
        ).scalar_one()
    assert rows == 1
    http.close()
