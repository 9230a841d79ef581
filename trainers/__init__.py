"""Models, data sources, the training loop, sweeps and the CCE kernel.

- `models`, `presets`: the transformers (decoder-only, encoder-decoder) and their sizes.
- `data`: known-entropy synthetic sources, mixtures, translation, token files.
- `train`: `train(TrainConfig) -> RunSummary`, the loop; `sink`: where metrics go.
- `checkpoint`, `distributed`: resume and DDP; `sweep`: TOML sweeps (`sweeps/*.toml`).
- `cce`: the linear-cross-entropy kernel every loss goes through.

LR schedules come from `fitting.schedules` (pure numpy), so the store records the same
spec the fitting engine rebuilds.
"""
