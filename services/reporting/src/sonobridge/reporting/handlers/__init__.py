"""Reporting use cases, one module per family; transports import the family they need."""
