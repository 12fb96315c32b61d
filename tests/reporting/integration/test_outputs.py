"""Outputs of a signed report: webhooks, FHIR, PDF, notification feed and SSE, gRPC."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.imagingstudy import ImagingStudy
from sqlalchemy import select

from sonobridge.api.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from sonobridge.reporting.adapters import orm
from sonobridge.reporting.adapters.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)

from ..conftest import DAY0, exam_completed, finding, inference_completed, send, wait_until

SECRET = "test-webhook-secret"
CONCLUSION = "肝右叶低回声占位，大小约 2.1×1.8 cm，建议增强CT进一步检查，警惕肝癌。"


class Receiver:
    """A real HTTP endpoint that refuses the first `failures` posts per path, then accepts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.refused: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                refused = receiver.refused.get(self.path, 0)
                if refused < receiver.failures:
                    receiver.refused[self.path] = refused + 1
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.received.append((self.path, dict(self.headers), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def on(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for p, h, b in self.received if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver(failures=2)
    yield r
    r.close()


def _fhir_attempts(node) -> int:
    t = orm.deliveries
    with node.sessions.begin() as s:
        return int(s.execute(select(t.c.attempts).where(t.c.channel == "fhir")).scalar_one())


def _sign_liver_report(node, language: str = "zh") -> tuple[str, dict]:
    admin = node.client("admin-1", ["admin"], "county-hospital")
    admin.put(
        "/v1/rosters/county-abdominal",
        json={
            "shifts": [
                {
                    "user": "dr-liu",
                    "role": "primary",
                    "starts_at": DAY0.isoformat(),
                    "ends_at": (DAY0 + timedelta(days=1)).isoformat(),
                }
            ]
        },
    ).raise_for_status()
    study = "1.2.826.0.1.3680043.10.3.77"
    send(node.bus, exam_completed(study, exam_type=5 + 2, instances=3), source="ingest")
    send(
        node.bus,
        inference_completed(
            study,
            exam_type=7,
            findings=[
                finding(
                    "126851005",
                    "liver mass",
                    0.83,
                    abnormal=True,
                    model="liver-lesion",
                    version="3.1.0",
                )
            ],
        ),
    )
    expert = node.client("dr-liu", ["expert"], "county-hospital")
    read_id = wait_until(lambda: expert.get("/v1/reads").json()["reads"], what="read")[0]["read_id"]
    expert.post(f"/v1/reads/{read_id}/claim").raise_for_status()
    expert.post(f"/v1/reads/{read_id}/draft", json={"language": language}).raise_for_status()
    expert.patch(f"/v1/reads/{read_id}/draft", json={"conclusion": CONCLUSION}).raise_for_status()
    expert.put(
        f"/v1/reads/{read_id}/verdicts",
        json={
            "verdicts": [
                {
                    "finding_code": "126851005",
                    "verdict": "modify",
                    "comment": "larger than measured",
                }
            ]
        },
    ).raise_for_status()
    signed = expert.post(f"/v1/reads/{read_id}/sign")
    assert signed.status_code == 201, signed.text
    return read_id, signed.json()


def test_signed_webhooks_and_fhir_are_retried_until_delivered(start_node, receiver):
    node = start_node(
        webhook_urls=[receiver.url("/hooks")],
        webhook_secret=SECRET,
        webhook_backoff_seconds=60,
        fhir_endpoint=receiver.url("/fhir"),
    )
    _read_id, report = _sign_liver_report(node)
    # Two refusals per endpoint: retries wait 60 s then 120 s on the service's clock.
    wait_until(lambda: _fhir_attempts(node) == 1, what="first FHIR attempt recorded")
    node.clock.advance(timedelta(seconds=59))
    assert _fhir_attempts(node) == 1
    node.clock.advance(timedelta(seconds=1))
    wait_until(lambda: _fhir_attempts(node) == 2, what="second FHIR attempt recorded")
    assert receiver.refused["/fhir"] == 2 and receiver.on("/fhir") == []
    node.clock.advance(timedelta(seconds=120))
    wait_until(lambda: receiver.on("/fhir"), what="FHIR delivered")
    hooks = wait_until(
        lambda: len(receiver.on("/hooks")) >= 3 and receiver.on("/hooks"), what="webhooks delivered"
    )
    types = sorted(json.loads(body)["type"] for _, body in hooks)
    assert types == ["followup.alerted", "report.routed", "report.signed"]
    for headers, body in hooks:
        assert verify(SECRET.encode(), headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        assert not verify(b"wrong", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    signed = next(json.loads(b) for _, b in hooks if json.loads(b)["type"] == "report.signed")
    assert signed["data"]["report_id"] == report["report_id"]
    assert signed["data"]["ai_agreement"][0]["verdict"] == "AI_VERDICT_MODIFY"

    headers, body = receiver.on("/fhir")[0]
    assert headers["Content-Type"] == "application/fhir+json"
    bundle = Bundle.parse_raw(body)
    study = ImagingStudy.parse_obj(json.loads(body)["entry"][0]["resource"])
    dr = DiagnosticReport.parse_obj(json.loads(body)["entry"][1]["resource"])
    assert bundle.type == "transaction"
    assert study.numberOfInstances == 3 and study.series[0].modality.code == "US"
    assert dr.status == "final" and dr.conclusion == CONCLUSION
    assert dr.code.coding[0].code == "24799-9"
    assert dr.conclusionCode[0].coding[0].code == "126851005"
    assert dr.imagingStudy[0].reference == f"ImagingStudy/{study.id}"


def test_fhir_export_of_an_amended_report_validates(start_node):
    node = start_node()
    _read_id, report = _sign_liver_report(node, language="en")
    expert = node.client("dr-liu", ["expert"], "county-hospital")
    expert.post(
        f"/v1/reports/{report['report_id']}/amend",
        json={"reason": "typo", "conclusion": "Liver mass, 2.1 cm."},
    ).raise_for_status()
    response = expert.get(f"/v1/reports/{report['report_id']}/fhir")
    assert response.headers["content-type"] == "application/fhir+json"
    bundle = Bundle.parse_raw(response.content)
    report_resource = bundle.entry[1].resource
    assert report_resource.status == "amended"
    assert report_resource.presentedForm[0].url == f"reports/{report['report_id']}/v2.pdf"
    # A reader from another township cannot export it.
    outsider = node.client("dr-x", ["physician"], "township-z")
    assert outsider.get(f"/v1/reports/{report['report_id']}/fhir").status_code == 404


def test_the_pdf_renders_chinese_text(start_node, tmp_path):
    if shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None:
        pytest.skip("needs poppler-utils (pdftoppm, pdftotext): apt-get install poppler-utils")
    node = start_node()
    _read_id, report = _sign_liver_report(node)
    expert = node.client("dr-liu", ["expert"], "county-hospital")
    response = expert.get(f"/v1/reports/{report['report_id']}/versions/1/pdf")
    assert response.headers["content-type"] == "application/pdf"
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(response.content)
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    flat = "".join(text.split())
    assert "肝脏超声检查报告" in flat
    assert "".join(CONCLUSION.split()) in flat
    subprocess.run(
        ["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
        check=True,
    )
    png = next(tmp_path.glob("page*.png"))
    assert png.stat().st_size > 5000
    keep = Path("/tmp/sonobridge-reporting-pdf-page.png")
    shutil.copy(png, keep)  # for a human to look at


def test_notifications_arrive_by_cursor_polling_and_server_sent_events(start_node):
    node = start_node()
    operator = node.client("nurse-li", ["operator"], "township-a")
    first = operator.get("/v1/notifications").json()
    assert first["notifications"] == []
    send(node.bus, inference_completed("1.2.826.0.1.3680043.10.4.1", acceptable=False))
    page = wait_until(
        lambda: operator.get("/v1/notifications", params={"cursor": first["next_cursor"]}).json()[
            "notifications"
        ],
        what="rescan notification",
    )
    assert page[0]["kind"] == "rescan_requested"
    assert page[0]["data"]["advice"] == "increase gain"
    cursor = operator.get("/v1/notifications", params={"cursor": first["next_cursor"]}).json()[
        "next_cursor"
    ]
    assert (
        operator.get("/v1/notifications", params={"cursor": cursor}).json()["notifications"] == []
    )

    send(node.bus, inference_completed("1.2.826.0.1.3680043.10.4.2", acceptable=False))
    lines = []
    with operator.stream(
        "GET", "/v1/notifications/stream", headers={"Last-Event-ID": cursor}
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            lines.append(line)
            if line.startswith("data: "):
                break
    event = json.loads(next(ln for ln in lines if ln.startswith("data: "))[6:])
    assert event["kind"] == "rescan_requested"
    assert event["data"]["study_instance_uid"] == "1.2.826.0.1.3680043.10.4.2"
    assert "event: rescan_requested" in lines
    # Someone else's feed stays empty.
    other = node.client("nurse-wu", ["operator"], "township-a")
    assert other.get("/v1/notifications").json()["notifications"] == []


def test_grpc_serves_reads_and_worklists_with_the_same_scoping(start_node, issuer):
    node = start_node()
    send(
        node.bus,
        inference_completed(
            "1.2.826.0.1.3680043.10.5.1", findings=[finding("1234", "thyroid cyst", 0.6)]
        ),
    )
    expert_token = issuer.issue("dr-wang", ["expert"], "county-hospital")
    outsider_token = issuer.issue("dr-x", ["physician"], "township-z")
    channel = grpc.insecure_channel(f"127.0.0.1:{node.host.app.state.grpc_port}")
    stub = reporting_pb2_grpc.ReportingServiceStub(channel)
    try:
        listing = wait_until(
            lambda: (
                stub.ListWorklist(
                    reporting_pb2.ListWorklistRequest(worklist="county-thyroid"),
                    metadata=[("authorization", f"Bearer {expert_token}")],
                ).reads
            ),
            what="grpc list",
        )
        read = stub.GetRead(
            reporting_pb2.GetReadRequest(read_id=listing[0].read_id),
            metadata=[("authorization", f"Bearer {expert_token}")],
        ).read
        assert read.state == reporting_pb2.READ_STATE_QUEUED
        assert read.ai_findings[0].display == "thyroid cyst"
        assert read.due_at.ToDatetime().isoformat().startswith("2026-03-02T02:00")
        with pytest.raises(grpc.RpcError) as denied:
            stub.GetRead(
                reporting_pb2.GetReadRequest(read_id=listing[0].read_id),
                metadata=[("authorization", f"Bearer {outsider_token}")],
            )
        assert denied.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetRead(reporting_pb2.GetReadRequest(read_id=listing[0].read_id))
        assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        channel.close()
