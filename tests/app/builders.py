"""Small real stores for the app and jobs tests, written through the store's own writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ENTROPY = 2.0
SIZES = (1e5, 3e5, 1e6, 3e6, 1e7)


def true_loss(n: float) -> float:
    """The known law the builder's runs follow: L = 2 + (1e4 / N)^0.3."""
    return ENTROPY + (1e4 / n) ** 0.3


def build_store(
    root: Path,
    *,
    project: str = "demo",
    sizes: tuple[float, ...] = SIZES,
    steps: int = 40,
    running: tuple[str, ...] = (),
    seed: int = 0,
) -> object:
    """A store with one run per size: train and eval curves, final eval on the law."""
    from store import Store
    from store.inbox import InboxWriter
    from store.ingest import ingest_inbox

    store = Store(root)
    rng = np.random.default_rng(seed)
    for n in sizes:
        run = f"n{int(n):d}"
        facts = {
            "params": int(n),
            "entropy": ENTROPY,
            "schedule": '{"kind": "cosine", "peak_lr": 0.001, "total_steps": 40}',
            "source": '{"name": "markov", "entropy": 2.0}',
        }
        writer = InboxWriter(store, project, run, facts=facts)
        step = np.arange(1, steps + 1)
        final = true_loss(n)
        train = final + 3.0 / step + rng.normal(0, 0.01, steps)
        writer.log_many(
            {
                "step": step,
                "split": ["train"] * steps,
                "loss": train,
                "tokens": step * 1000.0,
                "flops": 6.0 * n * step * 1000.0,
                "lr": np.full(steps, 1e-3),
            }
        )
        for s in (steps // 2, steps):
            noise = float(rng.normal(0, 0.002)) if s == steps else 0.0
            writer.log(
                s,
                split="eval",
                loss=final + (0.5 if s < steps else 0.0) + noise,
                tokens=s * 1000.0,
                flops=6.0 * n * s * 1000.0,
            )
        writer.close(status="running" if run in running else "finished")
    ingest_inbox(store)
    return store
