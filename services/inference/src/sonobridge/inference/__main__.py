"""`python -m sonobridge.inference [serve|migrate]`, from the spec the node also runs."""

from __future__ import annotations

import sys
from pathlib import Path

from sonobridge.common import service
from sonobridge.common.service import ServiceSpec
from sonobridge.inference.settings import Settings

SPEC = ServiceSpec(
    name="inference",
    settings=Settings,
    build="sonobridge.inference.bootstrap:build",
    migrate="sonobridge.inference.bootstrap:migrate_database",
    migrations=Path(__file__).parent / "migrations",
    http_port=8082,
    grpc_port=50062,
)


def main(argv: list[str] | None = None) -> int:
    """Serve, or only migrate the database (the `sonobridge-inference` command)."""
    return service.main(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
