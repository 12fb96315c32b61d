"""Generated contracts of sonobridge.api.ingest.v1 (regenerate with `make protos`)."""
