"""Storage adapters of the maintenance service."""
