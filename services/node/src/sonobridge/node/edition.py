"""The single-node edition: all four services in one process over SQLite, a directory and a log."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sonobridge.common.auth import LocalIssuer
from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.host import ServiceHost
from sonobridge.common.infrastructure import local_issuer
from sonobridge.common.objects.localdir import LocalDirObjectStore

log = logging.getLogger(__name__)

SERVICES = ("ingest", "inference", "reporting", "maintenance")


@dataclass(frozen=True)
class NodePorts:
    """Where each service listens; 0 asks the OS for a free port (tests)."""

    http: dict[str, int] = field(
        default_factory=lambda: {
            "ingest": 8081,
            "inference": 8082,
            "reporting": 8083,
            "maintenance": 8084,
        }
    )
    grpc: dict[str, int] = field(
        default_factory=lambda: {
            "ingest": 50061,
            "inference": 50062,
            "reporting": 50063,
            "maintenance": 50064,
        }
    )
    dimse: int = 11112

    @classmethod
    def ephemeral(cls) -> NodePorts:
        """Every listener on a free port."""
        return cls(http=dict.fromkeys(SERVICES, 0), grpc=dict.fromkeys(SERVICES, 0), dimse=0)


def _service_settings(
    name: str, data_dir: Path, host: str, ports: NodePorts, extra: dict[str, Any]
) -> Any:
    shared = dict(extra.get("common", {}))
    # Merged, not replaced: a viewer origin (http.cors_origins) keeps the node's host and port.
    http = {"host": host, "port": ports.http[name], **shared.pop("http", {})}
    common = {
        "edition": "single",
        "data_dir": data_dir,
        "http": http,
        "grpc": {"host": host, "port": ports.grpc[name]},
        **shared,
    }
    if name == "ingest":
        from sonobridge.ingest.settings import Settings as IngestSettings

        section = {"dimse_host": host, "dimse_port": ports.dimse, **extra.get(name, {})}
        return IngestSettings(**common, ingest=section)
    if name == "inference":
        from sonobridge.inference.settings import Settings as InferenceSettings

        return InferenceSettings(**common, **({"inference": extra[name]} if name in extra else {}))
    if name == "reporting":
        from sonobridge.reporting.settings import Settings as ReportingSettings

        return ReportingSettings(**common, **({"reporting": extra[name]} if name in extra else {}))
    from sonobridge.maintenance.settings import Settings as MaintenanceSettings

    return MaintenanceSettings(**common, **({"maintenance": extra[name]} if name in extra else {}))


def _build(name: str, settings: Any, **adapters: Any) -> ServiceHost:
    if name == "ingest":
        from sonobridge.ingest.bootstrap import build
    elif name == "inference":
        from sonobridge.inference.bootstrap import build
    elif name == "reporting":
        from sonobridge.reporting.bootstrap import build
    else:
        from sonobridge.maintenance.bootstrap import build
    host: ServiceHost = build(settings, **adapters)
    return host


class SingleNode:
    """Owns the shared embedded log, object directory and token issuer, and the four hosts."""

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        ports: NodePorts | None = None,
        extra_settings: dict[str, Any] | None = None,
        clock: Any = None,
        services: tuple[str, ...] = SERVICES,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.ports = ports or NodePorts()
        self.issuer: LocalIssuer = local_issuer(self.data_dir)
        self.bus = EmbeddedEventBus(self.data_dir / "events.sqlite3")
        self.store = LocalDirObjectStore(self.data_dir / "objects")
        self.store.purge_temp()
        verifier = self.issuer.verifier()
        self.hosts: dict[str, ServiceHost] = {}
        for name in services:
            settings = _service_settings(
                name, self.data_dir, host, self.ports, extra_settings or {}
            )
            adapters: dict[str, Any] = {"bus": self.bus, "store": self.store, "verifier": verifier}
            if clock is not None:
                adapters["clock"] = clock
            self.hosts[name] = _build(name, settings, **adapters)

    def start(self) -> None:
        """Start every service; on a failure, stop those already started."""
        started: list[ServiceHost] = []
        try:
            for host in self.hosts.values():
                host.start()
                started.append(host)
        except BaseException:
            for host in reversed(started):
                host.stop()
            raise

    def stop(self) -> None:
        """Stop every service, then close the shared log."""
        for host in reversed(list(self.hosts.values())):
            host.stop()
        self.bus.close()

    def urls(self) -> dict[str, str]:
        """Base HTTP URL of each service."""
        return {name: f"http://{self.host}:{h.http_port}" for name, h in self.hosts.items()}
