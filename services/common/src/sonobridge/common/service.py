"""The per-service spec that a service's `__main__` and the single-node edition both run from."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Unpack

from pydantic import ValidationError
from pydantic_settings import SettingsError

from sonobridge.common.host import ServiceHost
from sonobridge.common.logging import configure_logging

if TYPE_CHECKING:
    # Only for the type: importing it at run time would pull in the web and gRPC stacks.
    from sqlalchemy import Engine

    from sonobridge.common.infrastructure import Adapters


class ServiceBuild(Protocol):
    """The `bootstrap.build` every service has: its settings and any adapters a caller built."""

    def __call__(self, settings: Any, /, **adapters: Unpack[Adapters]) -> ServiceHost: ...


def _resolve(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class ServiceSpec:
    """What it takes to run one service: settings, how to build it, its migrations, its ports."""

    name: str
    settings: Callable[..., Any]
    # "module:function" targets, imported only when used: reading the spec (for `--help`, or the
    # node listing its services) must not pull in every service's web stack and models.
    build: str
    # The directory of the service's Alembic scripts.
    migrations: Path
    # Where the single-node edition listens for this service; the cluster uses 8080/50051 each.
    http_port: int
    grpc_port: int

    @classmethod
    def of(
        cls, name: str, settings: Callable[..., Any], *, http_port: int, grpc_port: int
    ) -> ServiceSpec:
        """The spec of `sonobridge.<name>`, laid out as every service is: bootstrap, migrations."""
        package = f"sonobridge.{name}.bootstrap"
        origin = importlib.util.find_spec(f"sonobridge.{name}")
        assert origin is not None and origin.origin is not None, name
        return cls(
            name=name,
            settings=settings,
            build=f"{package}:build",
            migrations=Path(origin.origin).parent / "migrations",
            http_port=http_port,
            grpc_port=grpc_port,
        )

    def main(self, argv: list[str] | None = None) -> int:
        """Serve, or only migrate the database (the `sonobridge-<name>` command)."""
        return main(self, argv)

    def load_settings(self, **values: Any) -> Any:
        """Build the settings from the environment, overridden by `values`."""
        return self.settings(**values)

    def build_host(self, settings: Any, **adapters: Any) -> ServiceHost:
        """Compose the service from its settings, with shared adapters (the node's) if given."""
        build: ServiceBuild = _resolve(self.build)
        return build(settings, **adapters)

    def migrate_database(self, settings: Any, engine: Engine | None = None) -> None:
        """Upgrade the schema to head on `engine`, or on the database the settings name."""
        # Imported here, as `build` is: the spec alone must not load SQLAlchemy and Alembic.
        from sonobridge.common.infrastructure import migrate_service

        migrate_service(settings, self.name, self.migrations, engine)


def main(spec: ServiceSpec, argv: list[str] | None = None) -> int:
    """Run `python -m sonobridge.<service> [serve|migrate]`: load settings once, then act."""
    parser = argparse.ArgumentParser(prog=f"python -m sonobridge.{spec.name}")
    parser.add_argument("command", nargs="?", choices=["serve", "migrate"], default="serve")
    args = parser.parse_args(argv)
    try:
        settings = spec.load_settings()
    except (ValidationError, SettingsError) as exc:
        # The field's name and the reason, not a traceback: this is an operator's typo.
        print(f"invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(spec.name, settings.log.level, settings.log.json_format)
    if args.command == "migrate":
        spec.migrate_database(settings)
        return 0
    spec.build_host(settings).serve_forever()
    return 0
