"""Adapters of the inference service: tables, the object-store model registry, proto mapping."""
