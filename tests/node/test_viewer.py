"""The single node serves OHIF at /viewer, configured for its DICOMweb and its OIDC login."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sonobridge.node.cli import wait_ready
from sonobridge.node.edition import NodePorts, SingleNode
from sonobridge.node.viewer import app_config


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNode]:
    # A stand-in dist: what is under test is how the node serves and configures it; the
    # browser suite runs the real one.
    dist: Path = tmp_path_factory.mktemp("dist")
    (dist / "index.html").write_text("<!doctype html><title>OHIF</title>", encoding="utf-8")
    (dist / "app.bundle.js").write_text("// bundle", encoding="utf-8")
    single = SingleNode(
        tmp_path_factory.mktemp("viewer-node"),
        ports=NodePorts.ephemeral(),
        services=("ingest", "reporting"),
        viewer_dist=dist,
    )
    single.start()
    try:
        wait_ready(single)
        yield single
    finally:
        single.stop()


def _config(text: str) -> dict:
    return json.loads(text.removeprefix("window.config = ").rstrip().rstrip(";"))


def test_viewer_routes_fall_back_to_the_app_with_cross_origin_isolation(node: SingleNode) -> None:
    assert node.viewer is not None
    with httpx.Client(base_url=node.viewer.origin, timeout=10) as client:
        page = client.get("/viewer", params={"StudyInstanceUIDs": "1.2.3"})
        bundle = client.get("/app.bundle.js")
    assert page.status_code == 200 and "<title>OHIF</title>" in page.text
    assert page.headers["cross-origin-opener-policy"] == "same-origin"
    assert page.headers["cross-origin-embedder-policy"] == "require-corp"
    assert bundle.text == "// bundle"


def test_the_app_config_names_this_nodes_dicomweb_and_the_ohif_oidc_client(
    node: SingleNode,
) -> None:
    assert node.viewer is not None
    origin = node.viewer.origin
    config = _config(httpx.get(f"{origin}/app-config.js", timeout=10).text)
    [source] = config["dataSources"]
    assert source["configuration"]["qidoRoot"] == f"{node.urls()['ingest']}/dicomweb"
    [oidc] = config["oidc"]
    assert (oidc["authority"], oidc["client_id"]) == (node.login.issuer_url, "ohif")
    assert oidc["redirect_uri"] == f"{origin}/callback"
    assert oidc["response_type"] == "code"


def test_dicomweb_allows_the_viewer_origin_and_the_station_links_to_the_viewer(
    node: SingleNode,
) -> None:
    assert node.viewer is not None
    origin = node.viewer.origin
    preflight = httpx.options(
        f"{node.urls()['ingest']}/dicomweb/studies",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
        timeout=10,
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] == origin
    reading = node.hosts["reporting"].app.state.station.settings
    assert (reading.viewer_url, reading.issuer_url) == (origin, node.login.issuer_url)
    to_login = httpx.get(f"{node.station_url()}", timeout=10)
    assert to_login.status_code == 303
    assert to_login.headers["location"] == "/reading/login?next=/reading/"


def test_without_an_issuer_ohif_gets_no_oidc_block() -> None:
    config = _config(app_config("http://x/dicomweb", "http://v", None))
    assert "oidc" not in config and config["routerBasename"] == "/"
