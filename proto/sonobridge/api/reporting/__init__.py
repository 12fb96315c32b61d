"""Generated contracts of sonobridge.api.reporting (regenerate with `make protos`)."""
