"""`python -m sonobridge.ingest [serve|migrate]`, from the spec the node also runs."""

from __future__ import annotations

import sys
from pathlib import Path

from sonobridge.common import service
from sonobridge.common.service import ServiceSpec
from sonobridge.ingest.settings import Settings

SPEC = ServiceSpec(
    name="ingest",
    settings=Settings,
    build="sonobridge.ingest.bootstrap:build",
    migrate="sonobridge.ingest.bootstrap:migrate_database",
    migrations=Path(__file__).parent / "migrations",
    http_port=8081,
    grpc_port=50061,
)


def main(argv: list[str] | None = None) -> int:
    """Serve, or only migrate the database (the `sonobridge-ingest` command)."""
    return service.main(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
