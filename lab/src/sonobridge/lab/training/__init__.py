"""Training of the reference models on the synthetic generator."""
