"""Run the `sonobridge` command: `python -m sonobridge.node`."""

from sonobridge.node.cli import main

main()
