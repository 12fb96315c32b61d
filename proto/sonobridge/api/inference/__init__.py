"""Generated contracts of sonobridge.api.inference (regenerate with `make protos`)."""
