"""SonoBridge ingest service."""
