"""Inference domain: model cards, verdicts and errors; no I/O."""
