"""The ingest README and .env.example name every route and setting the service really has."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from sonobridge.ingest.entrypoints import admin, dicomweb, rest
from sonobridge.ingest.settings import IngestSettings, Settings

SERVICE = Path(__file__).resolve().parents[3] / "services/ingest"
README = (SERVICE / "README.md").read_text()
ENV_EXAMPLE = SERVICE / ".env.example"


def _routes() -> set[str]:
    routers = (dicomweb.router, rest.router, admin.router)
    return {
        f"{method} {route.path}"
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }


def test_readme_names_every_route_and_no_route_that_is_gone() -> None:
    routes = _routes()
    documented = README.replace("GET  ", "GET ")
    assert [r for r in sorted(routes) if r not in documented] == []
    listed = set(re.findall(r"^(?:GET|POST)\s+(/dicomweb\S*)$", README, flags=re.MULTILINE))
    assert listed == {
        r.split(" ", 1)[1] for r in routes if r.split(" ", 1)[1].startswith("/dicomweb")
    }


def test_readme_and_env_example_name_every_ingest_setting() -> None:
    names = {f"INGEST__{field.upper()}" for field in IngestSettings.model_fields}
    example = ENV_EXAMPLE.read_text()
    assert [n for n in sorted(names) if n not in README] == []
    assert [n for n in sorted(names) if n not in example] == []
    mentioned = set(re.findall(r"INGEST__[A-Z_]+[A-Z]", README + example))
    assert mentioned <= names


def test_env_example_loads_as_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Variables set in this process would override the file under test.
    for name in list(os.environ):
        if name.upper().startswith(("INGEST__", "HTTP__", "GRPC__", "EDITION", "DATA_DIR")):
            monkeypatch.delenv(name)
    settings = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    assert settings.ingest.ae_title == "SONOBRIDGE"
    assert settings.ingest.dimse_port == 11112
    assert settings.ingest.max_instance_bytes == 2 * 1024**3
    assert settings.ingest.dimse_artim_timeout_seconds == 2
    assert settings.ingest.dimse_max_associations == 10
