"""Generated contracts of sonobridge.api.ingest (regenerate with `make protos`)."""
