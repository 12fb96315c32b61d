"""Run the ingest service: `python -m sonobridge.ingest [serve|migrate]`."""

from __future__ import annotations

import argparse

from sonobridge.common.logging import configure_logging
from sonobridge.ingest.settings import Settings


def main(argv: list[str] | None = None) -> None:
    """Parse the command, build settings once, then serve or migrate."""
    parser = argparse.ArgumentParser(prog="python -m sonobridge.ingest")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging("ingest", settings.log.level, settings.log.json_format)
    from sonobridge.ingest import bootstrap

    if args.command == "migrate":
        bootstrap.run_migrations(settings)
        return
    bootstrap.build(settings).serve_forever()


if __name__ == "__main__":
    main()
