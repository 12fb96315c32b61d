"""The single-node edition and the `sonobridge` admin command."""
