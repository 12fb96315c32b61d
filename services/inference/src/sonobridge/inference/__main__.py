"""Command line: `python -m sonobridge.inference [serve|migrate|validation-report ...]`."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from sonobridge.common.logging import configure_logging
from sonobridge.inference.bootstrap import build, migrate_database
from sonobridge.inference.entrypoints import report_command
from sonobridge.inference.metrics import SERVICE
from sonobridge.inference.settings import Settings


def main(argv: list[str] | None = None) -> int:
    """Parse the command, load settings once, then serve or migrate."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["validation-report"]:
        # Needs no settings: it reads labelled frames and the packaged or given models only.
        return report_command.run(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m sonobridge.inference")
    parser.add_argument("command", nargs="?", choices=["serve", "migrate"], default="serve")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
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
