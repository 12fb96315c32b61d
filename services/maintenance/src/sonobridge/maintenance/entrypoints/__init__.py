"""Transports of the maintenance service: REST, gRPC, the event consumer and the timers."""
