"""Ingest transports: REST for the app, DICOMweb, DIMSE and gRPC."""
