"""Generated contracts of sonobridge.api.events (regenerate with `make protos`)."""
