"""`python -m sonobridge.maintenance [serve|migrate]`, from the spec the node also runs."""

from __future__ import annotations

import sys
from pathlib import Path

from sonobridge.common import service
from sonobridge.common.service import ServiceSpec
from sonobridge.maintenance.settings import Settings

SPEC = ServiceSpec(
    name="maintenance",
    settings=Settings,
    build="sonobridge.maintenance.bootstrap:build",
    migrate="sonobridge.maintenance.bootstrap:migrate_database",
    migrations=Path(__file__).parent / "migrations",
    http_port=8084,
    grpc_port=50064,
)


def main(argv: list[str] | None = None) -> int:
    """Serve, or only migrate the database (the `sonobridge-maintenance` command)."""
    return service.main(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
