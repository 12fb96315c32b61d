"""A browser viewer on another origin can call every REST and DICOMweb route of the services."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sonobridge.common.cors import EXPOSED_HEADERS
from sonobridge.common.settings import HttpSettings
from sonobridge.node.edition import SERVICES, NodePorts, SingleNode

VIEWER = "http://127.0.0.1:3999"
STRANGER = "http://evil.example"
UID = "1.2.3"
ANY_ID = "00000000-0000-4000-8000-000000000000"
# What OHIF's dicomweb-client, tus-js-client and the app ask for in one preflight.
REQUESTED = "authorization, content-type, accept, tus-resumable, upload-length, upload-offset, " + (
    "upload-metadata, upload-checksum, idempotency-key, if-none-match"
)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNode]:
    data_dir: Path = tmp_path_factory.mktemp("cors-node")
    single = SingleNode(
        data_dir,
        ports=NodePorts.ephemeral(),
        extra_settings={"common": {"http": {"cors_origins": [VIEWER]}}},
    )
    single.start()
    yield single
    single.stop()


def _routes(base: str) -> list[tuple[str, str]]:
    with httpx.Client(base_url=base, timeout=30) as client:
        paths = client.get("/openapi.json").json()["paths"]
    routes = []
    for template, operations in paths.items():
        path = re.sub(r"\{(study|series|sop)\}", UID, template)
        path = re.sub(r"\{frames\}", "1", path)
        path = re.sub(r"\{[^}]+\}", ANY_ID, path)
        routes.extend((method.upper(), path) for method in operations)
    return routes


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_answers_a_preflight_without_a_token(node: SingleNode, service: str) -> None:
    routes = _routes(node.urls()[service])
    assert len(routes) >= 3, routes
    if service == "ingest":
        dicomweb = [p for _, p in routes if p.startswith("/dicomweb/")]
        assert len(dicomweb) >= 15, "the DICOMweb routes are in the OpenAPI document"
    with httpx.Client(base_url=node.urls()[service], timeout=30) as client:
        for method, path in routes:
            answer = client.options(
                path,
                headers={
                    "Origin": VIEWER,
                    "Access-Control-Request-Method": method,
                    "Access-Control-Request-Headers": REQUESTED,
                },
            )
            assert 200 <= answer.status_code < 300, (method, path, answer.text)
            assert answer.headers["access-control-allow-origin"] == VIEWER, (method, path)
            assert method in answer.headers["access-control-allow-methods"].split(", ")
            allowed = {
                h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")
            }
            assert {h.strip() for h in REQUESTED.split(",")} <= allowed, (method, path)
            assert "Origin" in answer.headers["vary"]
    print(f"{service}: {len(routes)} routes answered a preflight")


@pytest.mark.parametrize("service", SERVICES)
def test_answers_name_the_allowed_origin_vary_and_expose_headers(
    node: SingleNode, service: str
) -> None:
    [(_, path), *_] = [r for r in _routes(node.urls()[service]) if r[0] == "GET"]
    with httpx.Client(base_url=node.urls()[service], timeout=30) as client:
        refused = client.get(path, headers={"Origin": VIEWER})
        stranger = client.get(path, headers={"Origin": STRANGER})
    # Even a 401 must be readable, or the viewer cannot tell "log in" from "network error".
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == VIEWER
    assert "Origin" in refused.headers["vary"]
    exposed = {h.strip() for h in refused.headers["access-control-expose-headers"].split(",")}
    assert {"Warning", "Location", "ETag", "Upload-Offset", "Tus-Resumable"} <= exposed
    assert set(EXPOSED_HEADERS) <= exposed
    assert "access-control-allow-origin" not in stranger.headers
    assert "Origin" in stranger.headers["vary"]


def test_unlisted_origins_get_no_preflight(node: SingleNode) -> None:
    with httpx.Client(base_url=node.urls()["ingest"], timeout=30) as client:
        answer = client.options(
            "/dicomweb/studies",
            headers={"Origin": STRANGER, "Access-Control-Request-Method": "GET"},
        )
    assert not 200 <= answer.status_code < 300
    assert "access-control-allow-origin" not in answer.headers


def test_tus_discovery_still_answers_behind_the_preflight(node: SingleNode) -> None:
    token = node.issuer.issue("svc", ["service"])
    path = f"/v1/exams/{ANY_ID}/uploads"
    with httpx.Client(base_url=node.urls()["ingest"], timeout=30) as client:
        preflight = client.options(
            path,
            headers={
                "Origin": VIEWER,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "tus-resumable, upload-length, authorization",
            },
        )
        discovery = client.options(
            path, headers={"Origin": VIEWER, "Authorization": f"Bearer {token}"}
        )
    assert preflight.status_code == 200
    assert discovery.status_code == 204
    assert discovery.headers["tus-version"] == "1.0.0"
    assert discovery.headers["access-control-allow-origin"] == VIEWER


def test_cluster_default_allows_no_origin() -> None:
    assert HttpSettings().cors_origins == []
    with pytest.raises(ValueError, match="not an origin"):
        HttpSettings(cors_origins=["https://viewer.example/app"])
