"""Command line: `python -m sonobridge.reporting [serve|migrate]`."""

from __future__ import annotations

import argparse
import sys

from sonobridge.common.logging import configure_logging
from sonobridge.reporting.bootstrap import SERVICE, build, migrate_database
from sonobridge.reporting.settings import Settings


def main(argv: list[str] | None = None) -> int:
    """Run the reporting service, or only migrate its database."""
    parser = argparse.ArgumentParser(prog="python -m sonobridge.reporting")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(SERVICE, settings.log.level, settings.log.json_format)
    if args.command == "migrate":
        migrate_database(settings)
        return 0
    build(settings).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
