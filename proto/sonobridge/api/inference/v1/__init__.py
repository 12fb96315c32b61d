"""Generated contracts of sonobridge.api.inference.v1 (regenerate with `make protos`)."""
