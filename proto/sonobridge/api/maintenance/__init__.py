"""Generated contracts of sonobridge.api.maintenance (regenerate with `make protos`)."""
