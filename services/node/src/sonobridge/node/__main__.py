"""Run the `sonobridge` command: `python -m sonobridge.node`."""

import gc

# Start-up builds ~1M long-lived objects (modules, routes, models) and no garbage worth a
# collection; `serve` turns the collector back on, with those objects frozen, once it is
# ready, and every other command as soon as its arguments are read (~0.1 CPU s of start-up).
gc.disable()

from sonobridge.node.cli import main  # noqa: E402

main()
