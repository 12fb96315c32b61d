"""The lab: training, the synthetic generator and held-out evaluation; never deployed."""
