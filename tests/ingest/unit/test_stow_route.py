"""STOW-RS routes stay documented, refuse a caller without a token first, answer problem+json."""

from __future__ import annotations

from fastapi.testclient import TestClient

from sonobridge.common.auth import LocalIssuer
from sonobridge.common.http import create_service_app
from sonobridge.common.metrics import ServiceMetrics
from sonobridge.common.problems import PROBLEM_JSON
from sonobridge.ingest.entrypoints import dicomweb


def _client(issuer: LocalIssuer | None) -> TestClient:
    metrics = ServiceMetrics("stowroute")
    app = create_service_app(
        service="stowroute", metrics=metrics, verifier=issuer.verifier() if issuer else None
    )
    app.include_router(dicomweb.router)
    app.state.deps = object()  # every request here is refused before a use case runs
    app.state.public_base_url = None
    return TestClient(app, raise_server_exceptions=False)


def test_both_stow_routes_are_documented_with_their_path_parameter() -> None:
    paths = _client(None).get("/openapi.json").json()["paths"]
    assert "post" in paths["/dicomweb/studies"]
    study = paths["/dicomweb/studies/{study}"]["post"]
    assert [(p["name"], p["in"]) for p in study["parameters"]] == [("study", "path")]


def test_a_caller_without_a_valid_token_is_refused_before_anything_else() -> None:
    issuer = LocalIssuer("stow-route")
    client = _client(issuer)
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        answer = client.post(
            "/dicomweb/studies/1.2.3", headers={**headers, "Content-Type": "text/plain"}
        )
        assert answer.status_code == 401
        assert answer.headers["content-type"] == PROBLEM_JSON
        assert answer.headers["www-authenticate"] == "Bearer"


def test_an_authenticated_request_is_checked_by_the_route_as_problem_json() -> None:
    issuer = LocalIssuer("stow-route")
    token = issuer.issue("modality-1", ["service"], "east")
    client = _client(issuer)
    auth = {"Authorization": f"Bearer {token}"}
    wrong_type = client.post("/dicomweb/studies", headers={**auth, "Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    assert wrong_type.headers["content-type"] == PROBLEM_JSON
    assert wrong_type.json()["reason"] == "bad_content_type"
    bad_study = client.post(
        "/dicomweb/studies/not-a-uid",
        headers={**auth, "Content-Type": 'multipart/related; type="application/dicom"; boundary=b'},
    )
    assert bad_study.status_code == 422
    assert bad_study.headers["content-type"] == PROBLEM_JSON
    # Counted under the route's template, as FastAPI's own routes are.
    counted = {
        (s.labels["route"], s.labels["status"])
        for m in client.app.state.metrics.registry.collect()  # type: ignore[attr-defined]
        if m.name == "sonobridge_stowroute_http_requests"
        for s in m.samples
        if s.name.endswith("_total")
    }
    assert counted == {("/dicomweb/studies", "415"), ("/dicomweb/studies/{study}", "422")}
