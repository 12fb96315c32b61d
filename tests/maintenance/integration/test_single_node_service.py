"""The maintenance service over real HTTP and gRPC on single-node adapters (SQLite, local
directory, embedded event log), with events flowing through the bus in both directions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from maintenance.maintenance_support import (
    exam_completed,
    inference_completed,
    maintenance_config,
    wait_for,
)

from sonobridge.api.events.v1 import events_pb2
from sonobridge.api.events.v1.topics import EXAM_COMPLETED, INFERENCE_COMPLETED, TICKET_OPENED
from sonobridge.api.maintenance.v1 import maintenance_pb2, maintenance_pb2_grpc
from sonobridge.common.auth import LocalIssuer
from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.bus.ports import publish
from sonobridge.common.db import create_db_engine
from sonobridge.common.envelope import unpack, wrap
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.common.objects.ports import read_all
from sonobridge.common.settings import GrpcSettings, HttpSettings
from sonobridge.maintenance.bootstrap import build
from sonobridge.maintenance.settings import Settings


class Service:
    """A started maintenance host and what a test needs to talk to it."""

    def __init__(self, tmp: Path, issuer: LocalIssuer) -> None:
        config = maintenance_config()
        config.timer_interval_seconds = 0.2
        settings = Settings(
            data_dir=tmp,
            http=HttpSettings(host="127.0.0.1", port=0),
            grpc=GrpcSettings(host="127.0.0.1", port=0),
            maintenance=config,
        )
        self.bus = EmbeddedEventBus(tmp / "events.sqlite3")
        self.store = LocalDirObjectStore(tmp / "objects")
        self.engine = create_db_engine(f"sqlite:///{tmp / 'maintenance.sqlite3'}")
        self.host = build(
            settings,
            bus=self.bus,
            store=self.store,
            engine=self.engine,
            verifier=issuer.verifier(),
        )
        self.host.start()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.host.http_port}", timeout=30)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.host.grpc_port}")
        self.grpc = maintenance_pb2_grpc.MaintenanceServiceStub(self.channel)
        self.issuer = issuer

    def token(self, user: str, roles: list[str], institution: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.issue(user, roles, institution)}"}

    def close(self) -> None:
        self.http.close()
        self.channel.close()
        self.host.stop()
        self.engine.dispose()
        self.bus.close()


@pytest.fixture
def service(tmp_path: Path, issuer: LocalIssuer) -> Iterator[Service]:
    running = Service(tmp_path, issuer)
    try:
        yield running
    finally:
        running.close()


def register(service: Service, serial: str, institution: str = "township-a", **extra) -> None:
    admin = service.token("admin-1", ["admin"])
    body = {"serial": serial, "model": "HP-100", "institution_id": institution, **extra}
    response = service.http.post("/v1/devices", json=body, headers=admin)
    assert response.status_code == 201, response.text


def test_one_tap_report_to_closed_ticket_over_http(service: Service):
    register(service, "HP-A1")
    nurse = service.token("nurse-1", ["operator"], "township-a")
    report = {"device_serial": "HP-A1", "symptom": "dark stripes on the left"}
    first = service.http.post(
        "/v1/tickets", json=report, headers={**nurse, "Idempotency-Key": "tap-1"}
    )
    assert first.status_code == 201, first.text
    ticket = first.json()
    assert ticket["assignee"] == "eng-li" and ticket["sla"]["status"] == "ok"
    retry = service.http.post(
        "/v1/tickets", json=report, headers={**nurse, "Idempotency-Key": "tap-1"}
    )
    assert retry.status_code == 200 and retry.json()["ticket_id"] == ticket["ticket_id"]
    tid = ticket["ticket_id"]

    photo = service.http.post(
        f"/v1/tickets/{tid}/photos",
        content=b"\xff\xd8\xff\xe0fake-jpeg",
        headers={**nurse, "Content-Type": "image/jpeg"},
    )
    assert photo.status_code == 201, photo.text
    assert read_all(service.store, photo.json()["object_key"]) == b"\xff\xd8\xff\xe0fake-jpeg"

    got = service.http.get(f"/v1/tickets/{tid}", headers=nurse)
    assert got.json()["evidence_object_keys"] == [photo.json()["object_key"]]
    unchanged = service.http.get(
        f"/v1/tickets/{tid}", headers={**nurse, "If-None-Match": got.headers["ETag"]}
    )
    assert unchanged.status_code == 304

    eng = service.token("eng-li", ["engineer"], "vendor")
    for state in ("acknowledged", "dispatched", "on_site", "resolved"):
        step = service.http.post(f"/v1/tickets/{tid}/transitions", json={"to": state}, headers=eng)
        assert step.status_code == 200, step.text
    done = service.http.post(f"/v1/tickets/{tid}/transitions", json={"to": "closed"}, headers=nurse)
    assert done.json()["state"] == "closed"
    assert done.json()["sla"]["time_to_acknowledge_seconds"] is not None
    admin = service.token("admin-1", ["admin"])
    trail = service.http.get("/v1/audit", params={"target": tid}, headers=admin).json()
    assert [r["action"] for r in trail["records"]] == [
        "ticket.open",
        "ticket.photo",
        "ticket.acknowledged",
        "ticket.dispatched",
        "ticket.on_site",
        "ticket.resolved",
        "ticket.closed",
    ]
    assert service.http.get("/v1/audit", headers=nurse).status_code == 403
    history = service.http.get(f"/v1/tickets/{tid}/history", headers=nurse).json()["history"]
    assert [h["kind"] for h in history][:2] == ["opened", "evidence"]
    assert [h["to_state"] for h in history if h["kind"] == "transition"] == [
        "acknowledged",
        "dispatched",
        "on_site",
        "resolved",
        "closed",
    ]


def test_errors_are_problem_json_with_a_reason(service: Service):
    register(service, "HP-A1")
    nurse = service.token("nurse-1", ["operator"], "township-a")
    no_token = service.http.get("/v1/devices")
    assert no_token.status_code == 401
    assert no_token.headers["content-type"].startswith("application/problem+json")
    tid = service.http.post(
        "/v1/tickets", json={"device_serial": "HP-A1", "symptom": "x"}, headers=nurse
    ).json()["ticket_id"]
    bad_step = service.http.post(
        f"/v1/tickets/{tid}/transitions",
        json={"to": "closed"},
        headers=service.token("admin-1", ["admin"]),
    )
    assert bad_step.status_code == 409
    assert "cannot go from opened to closed" in bad_step.json()["detail"]
    unknown = service.http.post(
        "/v1/tickets", json={"device_serial": "NOPE", "symptom": "x"}, headers=nurse
    )
    assert unknown.status_code == 404
    invalid = service.http.post("/v1/tickets", json={"device_serial": "HP-A1"}, headers=nurse)
    assert invalid.status_code == 422 and "symptom" in invalid.json()["detail"]
    text = service.http.post(
        f"/v1/tickets/{tid}/photos",
        content=b"hello",
        headers={**nurse, "Content-Type": "text/plain"},
    )
    assert text.status_code == 422
    forbidden = service.http.post(
        "/v1/devices", json={"serial": "X", "model": "m", "institution_id": "a"}, headers=nurse
    )
    assert forbidden.status_code == 403


def test_telemetry_batch_resent_over_http_is_recognised(service: Service):
    register(service, "HP-A1")
    nurse = service.token("nurse-1", ["operator"], "township-a")
    now = datetime.now(UTC)
    batch = {
        "batch_id": "buf-7",
        "device_serial": "HP-A1",
        "samples": [
            {
                "recorded_at": (now - timedelta(minutes=m)).isoformat(),
                "battery_percent": 70,
                "temperature_celsius": 36.5,
                "scan_seconds": 120,
                "drops": 0,
                "firmware_version": "3.2",
            }
            for m in (3, 2, 1)
        ],
    }
    first = service.http.post("/v1/telemetry-batches", json=batch, headers=nurse)
    again = service.http.post("/v1/telemetry-batches", json=batch, headers=nurse)
    assert (first.json()["accepted"], again.json()["accepted"]) == (3, 0)
    assert again.json()["replayed"] is True
    device = service.http.get("/v1/devices/HP-A1", headers=nurse).json()
    assert device["firmware_version"] == "3.2"
    assert device["scan_hours_7d"] == pytest.approx(360 / 3600, abs=1e-3)
    naive = {**batch, "batch_id": "buf-8", "samples": [{"recorded_at": "2026-03-01T10:00:00"}]}
    assert service.http.post("/v1/telemetry-batches", json=naive, headers=nurse).status_code == 422


def test_ten_dead_element_exams_on_the_bus_open_one_ticket_and_announce_it(service: Service):
    register(service, "HP-A1")
    base = datetime.now(UTC) - timedelta(hours=12)
    events = [
        wrap(
            inference_completed("HP-A1", f"1.2.840.{i}", base + timedelta(hours=i)),
            source="inference",
            key=f"1.2.840.{i}",
        )
        for i in range(10)
    ]
    for event in events:
        publish(service.bus, INFERENCE_COMPLETED, event)
    # redelivery of the same events (same ce_id) and a re-publication under a new id
    publish(service.bus, INFERENCE_COMPLETED, events[0])
    publish(service.bus, INFERENCE_COMPLETED, events[5])
    publish(
        service.bus,
        INFERENCE_COMPLETED,
        wrap(
            inference_completed("HP-A1", "1.2.840.3", base + timedelta(hours=3)),
            source="inference",
            key="1.2.840.3",
        ),
    )
    exam = wrap(exam_completed("HP-A1", "1.2.840.0", base, 900), source="ingest", key="1.2.840.0")
    publish(service.bus, EXAM_COMPLETED, exam)
    publish(service.bus, EXAM_COMPLETED, exam)

    admin = service.token("admin-1", ["admin"])

    def consumed() -> bool:
        metrics = service.http.get("/metrics").text
        return (
            'sonobridge_maintenance_events_consumed_total{outcome="processed",'
            f'topic="{INFERENCE_COMPLETED}"}} 11.0'
            in metrics
            and 'outcome="duplicate"' in metrics
            and f'topic="{EXAM_COMPLETED}"}} 1.0' in metrics
        )

    wait_for(consumed)
    tickets = service.http.get("/v1/tickets", headers=admin).json()["tickets"]
    assert len(tickets) == 1
    assert tickets[0]["source"] == "probe_health"
    assert len(tickets[0]["evidence_object_keys"]) == 10
    device = service.http.get("/v1/devices/HP-A1", headers=admin).json()
    assert device["status"] == "faulty" and device["open_ticket_id"] == tickets[0]["ticket_id"]
    assert device["scan_hours_7d"] == pytest.approx(0.25)

    # the outbox relay ships TicketOpened to the bus, keyed by the device serial
    reader = service.bus.subscribe("test-reader", [TICKET_OPENED])
    try:
        records = wait_for(lambda: reader.poll(0.5))
    finally:
        reader.close()
    assert len(records) == 1 and records[0].key == b"HP-A1"
    opened = unpack(records[0].cloud_event())
    assert isinstance(opened, events_pb2.TicketOpened)
    assert opened.ticket_id == tickets[0]["ticket_id"]
    assert opened.source == events_pb2.TICKET_SOURCE_PROBE_HEALTH


def test_grpc_open_get_list_and_telemetry(service: Service):
    register(service, "HP-A1")
    register(service, "HP-A2")
    register(service, "HP-B1", "township-b")
    nurse = (
        ("authorization", f"Bearer {service.issuer.issue('nurse-1', ['operator'], 'township-a')}"),
    )

    request = maintenance_pb2.OpenTicketRequest(
        device_serial="HP-A1", symptom="no image", request_id="req-1"
    )
    first = service.grpc.OpenTicket(request, metadata=nurse)
    again = service.grpc.OpenTicket(request, metadata=nurse)
    assert first.created and not again.created
    assert again.ticket.ticket_id == first.ticket.ticket_id
    assert first.ticket.opened_by == "nurse-1"
    assert first.ticket.state == events_pb2.TICKET_STATE_OPENED
    due = first.ticket.ack_due_at.ToDatetime() - first.ticket.opened_at.ToDatetime()
    assert due == timedelta(hours=1)

    got = service.grpc.GetTicket(
        maintenance_pb2.GetTicketRequest(ticket_id=first.ticket.ticket_id), metadata=nurse
    )
    assert got.ticket.device_serial == "HP-A1"

    page = service.grpc.ListDevices(maintenance_pb2.ListDevicesRequest(page_size=1), metadata=nurse)
    assert [d.device_serial for d in page.devices] == ["HP-A1"]
    assert page.devices[0].status == events_pb2.DEVICE_STATUS_FAULTY
    assert page.devices[0].open_ticket_id == first.ticket.ticket_id
    rest = service.grpc.ListDevices(
        maintenance_pb2.ListDevicesRequest(page_size=5, page_token=page.next_page_token),
        metadata=nurse,
    )
    # the nurse's scope is township-a: HP-B1 never shows
    assert [d.device_serial for d in rest.devices] == ["HP-A2"] and not rest.next_page_token
    with pytest.raises(grpc.RpcError) as too_large:
        service.grpc.ListDevices(maintenance_pb2.ListDevicesRequest(page_size=1001), metadata=nurse)
    assert too_large.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_size must be at most 1000" in too_large.value.details()

    recorded = Timestamp()
    recorded.FromDatetime(datetime.now(UTC) - timedelta(minutes=5))
    extra = Struct()
    extra.update({"drops": 1})
    sample = maintenance_pb2.TelemetrySample(
        recorded_at=recorded,
        battery_percent=55,
        probe_temperature_celsius=37,
        scan_time=Duration(seconds=300),
        firmware_version="3.3",
        extra=extra,
    )
    telemetry = maintenance_pb2.RecordTelemetryRequest(device_serial="HP-A2", samples=[sample])
    stored = service.grpc.RecordTelemetry(telemetry, metadata=nurse)
    resent = service.grpc.RecordTelemetry(telemetry, metadata=nurse)
    assert (stored.accepted, stored.duplicates) == (1, 0)
    assert (resent.accepted, resent.duplicates) == (0, 1)

    with pytest.raises(grpc.RpcError) as missing:
        service.grpc.OpenTicket(
            maintenance_pb2.OpenTicketRequest(device_serial="NOPE", symptom="x"), metadata=nurse
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as hidden:
        service.grpc.OpenTicket(
            maintenance_pb2.OpenTicketRequest(device_serial="HP-B1", symptom="x"), metadata=nurse
        )
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as anonymous:
        service.grpc.GetTicket(maintenance_pb2.GetTicketRequest(ticket_id="x"))
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as empty:
        service.grpc.OpenTicket(
            maintenance_pb2.OpenTicketRequest(device_serial="HP-A2"), metadata=nurse
        )
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "symptom" in empty.value.details()


def test_metrics_endpoint_exports_the_catalogue_names(service: Service):
    register(service, "HP-A1")
    nurse = service.token("nurse-1", ["operator"], "township-a")
    service.http.post("/v1/tickets", json={"device_serial": "HP-A1", "symptom": "x"}, headers=nurse)
    text = service.http.get("/metrics").text
    for name in (
        'sonobridge_maintenance_open_tickets{sla_status="ok",state="opened"} 1.0',
        'sonobridge_maintenance_device_availability_ratio{institution="township-a"} 0.0',
        "sonobridge_maintenance_time_to_acknowledge_seconds_bucket",
        "sonobridge_maintenance_time_to_onsite_seconds_bucket",
        "sonobridge_maintenance_http_requests_total",
        'sonobridge_maintenance_ticket_sla_breaches_total{clock="onsite"} 0.0',
        "# TYPE sonobridge_maintenance_scan_seconds_total counter",
    ):
        assert name in text, name
    assert service.http.get("/readyz").status_code == 200


def test_exam_references_in_tickets_are_only_for_readers_of_the_institution(service: Service):
    register(service, "HP-A1")
    base = datetime.now(UTC) - timedelta(hours=12)
    for i in range(10):
        study = f"1.2.840.77.{i}"
        event = inference_completed("HP-A1", study, base + timedelta(hours=i))
        publish(service.bus, INFERENCE_COMPLETED, wrap(event, source="inference", key=study))
    admin = service.token("admin-1", ["admin"])
    found = wait_for(
        lambda: [
            t
            for t in service.http.get("/v1/tickets", headers=admin).json()["tickets"]
            if len(t["evidence_object_keys"]) == 10
        ]
    )
    ticket_id = found[0]["ticket_id"]
    seen = {}
    for who, roles, institution in (
        ("admin-1", ["admin"], None),
        ("nurse-1", ["operator"], "township-a"),
        ("eng-1", ["engineer"], None),
    ):
        headers = service.token(who, roles, institution)
        body = service.http.get(f"/v1/tickets/{ticket_id}", headers=headers).json()
        history = service.http.get(f"/v1/tickets/{ticket_id}/history", headers=headers).text
        answer = service.grpc.GetTicket(
            maintenance_pb2.GetTicketRequest(ticket_id=ticket_id),
            metadata=(("authorization", headers["Authorization"]),),
        )
        seen[who] = (body, history, answer.SerializeToString())
    for who in ("admin-1", "nurse-1"):
        body, history, answer = seen[who]
        assert body["study_instance_uid"].startswith("1.2.840.77.")
        assert len(body["evidence_object_keys"]) == 10 and b"1.2.840.77." in answer
        assert "1.2.840.77." in history
    body, history, answer = seen["eng-1"]
    assert body["study_instance_uid"] is None or body["study_instance_uid"] == ""
    assert body["evidence_object_keys"] == []
    assert "1.2.840.77." not in history and b"1.2.840.77." not in answer
    assert body["device_serial"] == "HP-A1" and body["symptom"]
