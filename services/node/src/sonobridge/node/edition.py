"""The single-node edition: all four services in one process over SQLite, a directory and a log."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sonobridge.common.auth import LocalIssuer
from sonobridge.common.bus.embedded import EmbeddedEventBus
from sonobridge.common.bus.retention import event_log_retention
from sonobridge.common.host import ServiceHost
from sonobridge.common.infrastructure import local_issuer
from sonobridge.common.objects.localdir import LocalDirObjectStore
from sonobridge.common.service import ServiceSpec
from sonobridge.common.settings import DeliverySettings
from sonobridge.node.identity.server import DEFAULT_PORT as DEFAULT_LOGIN_PORT
from sonobridge.node.identity.server import LoginServer
from sonobridge.node.viewer import ViewerLogin, ViewerServer

log = logging.getLogger(__name__)

SERVICES = ("ingest", "inference", "reporting", "maintenance")
# The service whose host runs the shared log's retention and exports its metrics; a node
# without it uses its first service.
LOG_KEEPER = "maintenance"


def spec(name: str) -> ServiceSpec:
    """Return a service's spec, the one its own `python -m sonobridge.<name>` runs from."""
    module = importlib.import_module(f"sonobridge.{name}.__main__")
    found: ServiceSpec = module.SPEC
    return found


@dataclass(frozen=True)
class NodePorts:
    """Where each service listens; 0 asks the OS for a free port (tests)."""

    http: dict[str, int] = field(
        default_factory=lambda: {name: spec(name).http_port for name in SERVICES}
    )
    grpc: dict[str, int] = field(
        default_factory=lambda: {name: spec(name).grpc_port for name in SERVICES}
    )
    dimse: int = 11112
    login: int = DEFAULT_LOGIN_PORT
    viewer: int = 8088

    @classmethod
    def ephemeral(cls) -> NodePorts:
        """Every listener on a free port."""
        return cls(
            http=dict.fromkeys(SERVICES, 0),
            grpc=dict.fromkeys(SERVICES, 0),
            dimse=0,
            login=0,
            viewer=0,
        )


def _service_settings(
    service: ServiceSpec, data_dir: Path, host: str, ports: NodePorts, extra: dict[str, Any]
) -> Any:
    name = service.name
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
    section = dict(extra.get(name, {}))
    if name == "ingest":
        # The DIMSE listener is the node's, on the node's host.
        section = {"dimse_host": host, "dimse_port": ports.dimse, **section}
    return service.load_settings(**common, **({name: section} if section else {}))


def _with_station(
    extra: dict[str, Any], viewer: ViewerServer | None, issuer: str
) -> dict[str, Any]:
    """Point the reading station at the viewer and the issuer; let the viewer call DICOMweb."""
    extra = {**extra}
    reading: dict[str, Any] = {"issuer_url": issuer}
    if viewer is not None:
        common = dict(extra.get("common", {}))
        http = dict(common.get("http", {}))
        http["cors_origins"] = [*http.get("cors_origins", []), viewer.origin]
        extra["common"] = {**common, "http": http}
        reading["viewer_url"] = viewer.origin
    reporting = dict(extra.get("reporting", {}))
    reporting["reading"] = {**reading, **reporting.get("reading", {})}
    extra["reporting"] = reporting
    return extra


class SingleNode:
    """Owns the shared embedded log, object directory, login provider and the four hosts.

    People log in at the provider (`login.issuer_url`) with passwords from the consortium file;
    the services trust its tokens and those of `sonobridge token` (machines and tests).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        ports: NodePorts | None = None,
        extra_settings: dict[str, Any] | None = None,
        clock: Any = None,
        services: tuple[str, ...] = SERVICES,
        consortium_file: Path | None = None,
        redirect_origins: tuple[str, ...] = (),
        viewer_dist: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.ports = ports or NodePorts()
        self.issuer: LocalIssuer = local_issuer(self.data_dir)
        self.bus = EmbeddedEventBus(self.data_dir / "events.sqlite3")
        self.store = LocalDirObjectStore(self.data_dir / "objects")
        self.store.purge_temp()
        self.login = LoginServer(
            self.issuer,
            self.data_dir,
            consortium_file=consortium_file or self.data_dir / "consortium.json",
            host=host,
            port=self.ports.login,
            redirect_origins=redirect_origins,
        )
        verifier = self.login.verifier
        self.viewer = self._viewer(viewer_dist, self.login.issuer_url)
        extra_settings = _with_station(extra_settings or {}, self.viewer, self.login.issuer_url)
        self.hosts: dict[str, ServiceHost] = {}
        delivery: dict[str, DeliverySettings] = {}
        for name in services:
            service = spec(name)
            settings = _service_settings(
                service, self.data_dir, host, self.ports, extra_settings or {}
            )
            adapters: dict[str, Any] = {"bus": self.bus, "store": self.store, "verifier": verifier}
            if clock is not None:
                adapters["clock"] = clock
            self.hosts[name] = service.build_host(settings, **adapters)
            delivery[name] = settings.delivery
        self._keep_log(delivery)

    def _keep_log(self, delivery: dict[str, DeliverySettings]) -> None:
        """Give one host the worker that purges the shared log, with its metrics and settings."""
        if not self.hosts:
            return
        name = LOG_KEEPER if LOG_KEEPER in self.hosts else next(iter(self.hosts))
        keeper = self.hosts[name]
        keeper.workers["event-log-retention"] = event_log_retention(
            self.bus.path, keeper.app.state.metrics, delivery[name]
        )

    def _viewer(self, dist: Path | None, issuer: str) -> ViewerServer | None:
        if dist is None:
            return None
        viewer = ViewerServer(dist, self.host, self.ports.viewer)
        viewer.login = ViewerLogin(issuer)
        # OHIF runs its OIDC client in the browser: discovery, JWKS, token and userinfo are
        # fetched cross-origin from the viewer's origin.
        self.login.allow_origins([viewer.origin])
        return viewer

    def start(self) -> None:
        """Start the login, every service and the viewer; on a failure, stop those started."""
        started: list[ServiceHost | LoginServer] = []
        try:
            self.login.start()
            started.append(self.login)
            for host in self.hosts.values():
                host.start()
                started.append(host)
        except BaseException:
            for host in reversed(started):
                host.stop()
            raise
        if self.viewer is not None and "ingest" in self.hosts:
            # Known only now: an ephemeral ingest port is bound when ingest starts.
            self.viewer.dicomweb_root = f"{self.urls()['ingest']}/dicomweb"
            self.viewer.start()

    def stop(self) -> None:
        """Stop the viewer and every service, then close the shared log."""
        if self.viewer is not None:
            self.viewer.stop()
        for host in reversed(list(self.hosts.values())):
            host.stop()
        self.login.stop()
        self.bus.close()

    def station_url(self) -> str | None:
        """The reading station's worklist, when reporting runs here."""
        return f"{self.urls()['reporting']}/reading/" if "reporting" in self.hosts else None

    def urls(self) -> dict[str, str]:
        """Base HTTP URL of each service."""
        return {name: f"http://{self.host}:{h.http_port}" for name, h in self.hosts.items()}
