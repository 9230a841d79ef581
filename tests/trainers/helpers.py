"""The small training config the trainer tests share."""

from __future__ import annotations

from trainers.train import TrainConfig


def tiny(**kw: object) -> TrainConfig:
    """cpu-tiny on a small Markov source, one thread, no eval unless asked."""
    base = dict(
        preset="cpu-tiny",
        data="markov:vocab=64,seed=0",
        steps=20,
        batch_size=8,
        seq_len=32,
        eval_every=0,
        eval_batches=2,
        threads=1,
    )
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]
