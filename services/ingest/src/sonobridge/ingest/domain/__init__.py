"""Ingest domain: exams, manifests, instance descriptions and the rules over them (no I/O)."""
