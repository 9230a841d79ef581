"""Models, data sources, LR schedules, the training loop, sweeps and the CCE kernel."""
