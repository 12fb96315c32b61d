"""`python -m sonobridge.reporting [serve|migrate]`, from the spec the node also runs."""

from __future__ import annotations

import sys
from pathlib import Path

from sonobridge.common import service
from sonobridge.common.service import ServiceSpec
from sonobridge.reporting.settings import Settings

SPEC = ServiceSpec(
    name="reporting",
    settings=Settings,
    build="sonobridge.reporting.bootstrap:build",
    migrate="sonobridge.reporting.bootstrap:migrate_database",
    migrations=Path(__file__).parent / "migrations",
    http_port=8083,
    grpc_port=50063,
)


def main(argv: list[str] | None = None) -> int:
    """Serve, or only migrate the database (the `sonobridge-reporting` command)."""
    return service.main(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
