"""Reporting rules and value types: routing, assignment, clocks, reports, follow-up (no I/O)."""
