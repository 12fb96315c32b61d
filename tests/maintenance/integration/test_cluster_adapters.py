"""The maintenance service on the cluster adapters: real Kafka, MinIO and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from infra_fixtures import MinioEndpoint, unique_name
from maintenance.maintenance_support import inference_completed, maintenance_config, wait_for

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import INFERENCE_COMPLETED, TICKET_OPENED
from sonobridge.common.auth import LocalIssuer
from sonobridge.common.bus.kafka import KafkaEventBus
from sonobridge.common.bus.ports import publish
from sonobridge.common.db import create_db_engine
from sonobridge.common.envelope import unpack, wrap
from sonobridge.common.objects.minio import MinioObjectStore
from sonobridge.common.objects.ports import read_all
from sonobridge.common.settings import GrpcSettings, HttpSettings
from sonobridge.maintenance.bootstrap import build
from sonobridge.maintenance.settings import Settings

pytestmark = pytest.mark.infra


@pytest.fixture
def cluster_service(
    tmp_path: Path,
    issuer: LocalIssuer,
    kafka_bootstrap: str,
    minio_endpoint: MinioEndpoint,
    pg_database: str,
) -> Iterator[tuple[object, KafkaEventBus, MinioObjectStore]]:
    config = maintenance_config()
    config.consumer_group = unique_name("maintenance")
    config.timer_interval_seconds = 0.5
    settings = Settings(
        data_dir=tmp_path,
        http=HttpSettings(host="127.0.0.1", port=0),
        grpc=GrpcSettings(host="127.0.0.1", port=0),
        maintenance=config,
    )
    bus = KafkaEventBus(kafka_bootstrap)
    store = MinioObjectStore(
        minio_endpoint.endpoint,
        minio_endpoint.access_key,
        minio_endpoint.secret_key,
        unique_name("maint"),
    )
    store.ensure_bucket()
    engine = create_db_engine(pg_database)
    host = build(settings, bus=bus, store=store, engine=engine, verifier=issuer.verifier())
    host.start()
    try:
        yield host, bus, store
    finally:
        host.stop()
        engine.dispose()
        bus.close()


def test_dead_element_exams_on_kafka_open_one_ticket_in_postgres_with_photo_in_minio(
    cluster_service, issuer: LocalIssuer
):
    host, bus, store = cluster_service
    serial = f"HP-{uuid.uuid4().hex[:8]}"
    http = httpx.Client(base_url=f"http://127.0.0.1:{host.http_port}", timeout=30)
    admin = {"Authorization": f"Bearer {issuer.issue('admin-1', ['admin'])}"}
    nurse = {"Authorization": f"Bearer {issuer.issue('nurse-1', ['operator'], 'township-a')}"}
    created = http.post(
        "/v1/devices",
        headers=admin,
        json={"serial": serial, "model": "HP-100", "institution_id": "township-a"},
    )
    assert created.status_code == 201, created.text

    base = datetime.now(UTC) - timedelta(hours=12)
    events = [
        wrap(
            inference_completed(serial, f"{serial}.{i}", base + timedelta(hours=i)),
            source="inference",
            key=f"{serial}.{i}",
        )
        for i in range(10)
    ]
    for event in [*events, events[0], events[7]]:  # two redeliveries
        publish(bus, INFERENCE_COMPLETED, event)

    def one_ticket_with_all_evidence():
        found = http.get("/v1/tickets", headers=admin, params={"device_serial": serial}).json()[
            "tickets"
        ]
        return found if found and len(found[0]["evidence_object_keys"]) == 10 else None

    tickets = wait_for(one_ticket_with_all_evidence, timeout=90)
    assert len(tickets) == 1
    tid = tickets[0]["ticket_id"]

    photo = http.post(
        f"/v1/tickets/{tid}/photos",
        content=b"\x89PNG\r\n\x1a\nfake",
        headers={**nurse, "Content-Type": "image/png"},
    )
    assert photo.status_code == 201, photo.text
    assert read_all(store, photo.json()["object_key"]) == b"\x89PNG\r\n\x1a\nfake"

    reader = bus.subscribe(unique_name("reader"), [TICKET_OPENED])
    try:

        def mine():
            return [r for r in reader.poll(1.0) if r.key == serial.encode()]

        records = wait_for(mine, timeout=60)
    finally:
        reader.close()
    opened = unpack(records[0].cloud_event())
    assert isinstance(opened, events_pb2.TicketOpened) and opened.ticket_id == tid
    http.close()
