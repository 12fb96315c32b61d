"""The service spec: `__main__` serves or migrates from it; settings errors name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings

from sonobridge.common import infrastructure, service
from sonobridge.common.service import ServiceSpec

calls: list[tuple[str, Any]] = []


class Log(BaseModel):
    level: str = "INFO"
    json_format: bool = False


class FakeSettings(BaseSettings):
    log: Log = Log()
    port: int = Field(8080, ge=0, le=65535)


class FakeHost:
    def __init__(self, settings: FakeSettings, **adapters: Any) -> None:
        self.settings, self.adapters = settings, adapters

    def serve_forever(self) -> None:
        calls.append(("serve", self.settings.port))


def build(settings: FakeSettings, **adapters: Any) -> FakeHost:
    return FakeHost(settings, **adapters)


SPEC = ServiceSpec(
    name="fake",
    settings=FakeSettings,
    build=f"{__name__}:build",
    migrations=Path(__file__).parent,
    http_port=8089,
    grpc_port=50069,
)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    calls.clear()
    monkeypatch.setattr(service, "configure_logging", lambda *_: None)


def test_serve_is_the_default_command() -> None:
    assert service.main(SPEC, []) == 0
    assert calls == [("serve", 8080)]


def test_migrate_only_migrates_the_services_own_scripts(monkeypatch: pytest.MonkeyPatch) -> None:
    def migrate_service(settings: FakeSettings, name: str, migrations: Path, engine: Any) -> None:
        calls.append(("migrate", (settings.port, name, migrations, engine)))

    monkeypatch.setattr(infrastructure, "migrate_service", migrate_service)
    assert service.main(SPEC, ["migrate"]) == 0
    assert calls == [("migrate", (8080, "fake", Path(__file__).parent, None))]


def test_invalid_settings_stop_start_up_with_the_fields_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PORT", "99999")
    assert service.main(SPEC, []) == 2
    assert "port" in capsys.readouterr().err
    assert not calls


def test_the_node_builds_a_host_with_its_shared_adapters() -> None:
    host = SPEC.build_host(SPEC.load_settings(port=1), bus="shared-bus")
    assert isinstance(host, FakeHost) and host.adapters == {"bus": "shared-bus"}
    assert host.settings.port == 1
