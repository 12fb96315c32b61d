"""Each HTTP request is counted and timed under its route template and status, never its path."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.testclient import TestClient

from sonobridge.common.http import create_service_app
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.problems import NotFound


def _counted(metrics: ServiceMetrics) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for m in metrics.registry.collect()
        if m.name == "sonobridge_counting_http_requests"
        for s in m.samples
        if s.name.endswith("_total")
    }


def _timed(metrics: ServiceMetrics) -> dict[tuple[str, str], float]:
    return {
        (s.labels["method"], s.labels["route"]): s.value
        for m in metrics.registry.collect()
        if m.name == "sonobridge_counting_http_request_duration_seconds"
        for s in m.samples
        if s.name.endswith("_count")
    }


def test_requests_are_counted_by_route_template_and_status_including_failures() -> None:
    metrics = ServiceMetrics("counting")
    app = create_service_app(service="counting", metrics=metrics)

    @app.get("/v1/exams/{exam_id}")
    def exam(exam_id: str) -> dict[str, str]:
        if exam_id == "missing":
            raise NotFound("no such exam")
        if exam_id == "bug":
            raise KeyError(exam_id)
        return {"exam_id": exam_id}

    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/v1/exams/1.2.3").status_code == 200
    assert client.get("/v1/exams/4.5.6").status_code == 200
    assert client.get("/v1/exams/missing").status_code == 404
    assert client.get("/v1/exams/bug").status_code == 500
    assert client.get("/nowhere").status_code == 404
    assert client.get("/healthz").status_code == 200

    assert _counted(metrics) == {
        ("GET", "/v1/exams/{exam_id}", "200"): 2.0,
        ("GET", "/v1/exams/{exam_id}", "404"): 1.0,
        ("GET", "/v1/exams/{exam_id}", "500"): 1.0,
        ("GET", "unmatched", "404"): 1.0,
    }
    assert _timed(metrics) == {("GET", "/v1/exams/{exam_id}"): 4.0, ("GET", "unmatched"): 1.0}


def test_routes_of_an_included_router_are_counted_by_their_template() -> None:
    metrics = ServiceMetrics("counting")
    app = create_service_app(service="counting", metrics=metrics)
    router = APIRouter(prefix="/dicomweb")

    @router.get("/studies/{study}")
    def study(study: str) -> dict[str, str]:
        return {"study": study}

    app.include_router(router)
    client = TestClient(app)
    assert client.get("/dicomweb/studies/1.2.3").status_code == 200
    assert client.get("/dicomweb/nowhere").status_code == 404

    assert _counted(metrics) == {
        ("GET", "/dicomweb/studies/{study}", "200"): 1.0,
        ("GET", "unmatched", "404"): 1.0,
    }


def test_methods_a_caller_invents_share_one_label_instead_of_a_series_each() -> None:
    metrics = ServiceMetrics("counting")
    app = create_service_app(service="counting", metrics=metrics)
    client = TestClient(app, raise_server_exceptions=False)
    for invented in ("FOO1", "FOO2", "PROPFIND"):
        assert client.request(invented, "/nowhere").status_code == 404
    assert client.get("/nowhere").status_code == 404

    assert _counted(metrics) == {
        ("OTHER", "unmatched", "404"): 3.0,
        ("GET", "unmatched", "404"): 1.0,
    }
    assert _timed(metrics) == {("OTHER", "unmatched"): 3.0, ("GET", "unmatched"): 1.0}
