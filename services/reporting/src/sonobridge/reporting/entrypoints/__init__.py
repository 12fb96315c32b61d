"""Transports of the reporting service: REST, gRPC, event consumer, timer and delivery loops."""
