"""Generated contracts of sonobridge.api.maintenance.v1 (regenerate with `make protos`)."""
