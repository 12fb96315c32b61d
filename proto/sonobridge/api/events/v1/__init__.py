"""Generated contracts of sonobridge.api.events.v1 (regenerate with `make protos`)."""
