"""Generated contracts of sonobridge.api.reporting.v1 (regenerate with `make protos`)."""
