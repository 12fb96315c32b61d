"""CORS as a browser viewer on another origin sees ingest's DICOMweb and tus routes, both editions.

The sweep over every route of every service is tests/node/test_cors.py on the single node; here
a few routes a viewer and the app use, on the cluster adapters as well.
"""

from __future__ import annotations

import httpx
import pytest
from ingest.conformance.conformance_support import VIEWER, Server
from ingest.ingest_support import new_exam, tus_create, tus_metadata

STRANGER = "http://evil.example"
TUS_HEADERS = ("tus-resumable", "upload-length", "upload-offset", "upload-metadata")
REQUESTED = ", ".join(("authorization", "content-type", "accept", "upload-checksum", *TUS_HEADERS))


def _listed(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",")}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/dicomweb/studies"),
        ("POST", "/dicomweb/studies"),
        ("POST", "/v1/exams/00000000-0000-4000-8000-000000000000/uploads"),
        ("PATCH", "/v1/uploads/00000000-0000-4000-8000-000000000000"),
    ],
)
def test_a_preflight_needs_no_token_and_names_origin_methods_and_headers(
    server: Server, method: str, path: str
) -> None:
    request = {"Access-Control-Request-Method": method, "Access-Control-Request-Headers": REQUESTED}
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        allowed = client.options(path, headers={"Origin": VIEWER, **request})
        stranger = client.options(path, headers={"Origin": STRANGER, **request})
    assert 200 <= allowed.status_code < 300, allowed.text
    assert allowed.headers["access-control-allow-origin"] == VIEWER
    assert method.lower() in _listed(allowed.headers["access-control-allow-methods"])
    assert _listed(REQUESTED) <= _listed(allowed.headers["access-control-allow-headers"])
    assert "origin" in _listed(allowed.headers["vary"])
    assert not 200 <= stranger.status_code < 300
    assert "access-control-allow-origin" not in stranger.headers


def test_answers_to_the_viewer_and_the_app_are_readable_with_their_headers(server: Server) -> None:
    origin = {"Origin": VIEWER}
    with httpx.Client(base_url=server.base_url, timeout=30) as anonymous:
        refused = anonymous.get("/dicomweb/studies", headers=origin)
    with server.http() as client:
        studies = client.get("/dicomweb/studies", headers=origin)
        stranger = client.get("/dicomweb/studies", headers={"Origin": STRANGER})
        exam_id = new_exam(client)
        created = client.post(
            f"/v1/exams/{exam_id}/uploads",
            headers={
                **origin,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "10",
                "Upload-Metadata": tus_metadata({"filename": "a.dcm"}),
            },
        )
        offset = client.head(
            tus_create(client, exam_id, 10), headers={**origin, "Tus-Resumable": "1.0.0"}
        )
    # Even a 401 must be readable, or the viewer cannot tell "log in" from "network error".
    assert refused.status_code == 401
    for answer in (refused, studies, created, offset):
        assert answer.headers["access-control-allow-origin"] == VIEWER, answer.request.url
        assert "origin" in _listed(answer.headers["vary"])
    assert studies.status_code in (200, 204)
    assert created.status_code == 201
    assert offset.status_code == 200
    exposed = _listed(created.headers["access-control-expose-headers"])
    assert {"warning", "location", "upload-offset", "upload-expires", "tus-resumable"} <= exposed
    assert {"tus-version", "tus-extension", "tus-max-size"} <= exposed
    assert "access-control-allow-origin" not in stranger.headers
