"""Command line: `python -m sonobridge.maintenance [serve|migrate]`."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError
from pydantic_settings import SettingsError

from sonobridge.common.logging import configure_logging
from sonobridge.maintenance.bootstrap import build, migrate_database
from sonobridge.maintenance.metrics import SERVICE
from sonobridge.maintenance.settings import Settings


def main(argv: list[str] | None = None) -> int:
    """Parse the command, load settings once, then serve or migrate."""
    parser = argparse.ArgumentParser(prog="python -m sonobridge.maintenance")
    parser.add_argument("command", nargs="?", choices=["serve", "migrate"], default="serve")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except (ValidationError, SettingsError) as exc:
        print(f"invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(SERVICE, settings.log.level, settings.log.json_format)
    if args.command == "migrate":
        migrate_database(settings)
        return 0
    build(settings).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
