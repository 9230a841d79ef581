"""Downstream cross-entropy (Isik et al. 2024, "Scaling Laws for Downstream Task Performance
of Large Language Models"): the finetuned model's downstream cross-entropy as a power law in
the pretraining tokens D_p, the finetuning data held fixed.

    L(D_p) = E + A / D_p^alpha

The same shape as `power_law` in tokens, kept as its own law because its size is the
pretraining data of a model that is then finetuned, and its E is the downstream task's
irreducible loss. The score form of the same paper (BLEU and the like) is
`fitting.laws.downstream_score`: a score rises, has no irreducible term, and follows a
log-law, so it is a different law rather than an option of this one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fitting.laws.base import (
    Law,
    Parameter,
    Prepared,
    grid,
    group_ids,
    loss_column,
    positive_column,
    require_columns,
)


class Downstream(Law):
    """Downstream cross-entropy after finetuning, in pretraining tokens."""

    name: ClassVar[str] = "downstream"
    formula: ClassVar[str] = "L = E + A / D_p^alpha   (D_p: pretraining tokens)"
    description: ClassVar[str] = (
        "Isik et al. 2024: downstream (finetuned) cross-entropy as a power law in the "
        "pretraining tokens D_p (column tokens); E estimates the task's irreducible loss. "
        "It falls monotonically even when pretraining and downstream data are misaligned."
    )
    inputs: ClassVar[tuple[str, ...]] = ("tokens",)
    irreducible: ClassVar[str | None] = "E"
    sizes: ClassVar[tuple[str, ...]] = ("tokens",)
    analyses: ClassVar[frozenset[str]] = frozenset({"kl_decomposition"})

    def parameters(self, data: pd.DataFrame | None = None, **options: Any) -> list[Parameter]:
        return [
            Parameter("E", 0.0, 100.0, doc="irreducible downstream loss"),
            Parameter("A", 1e-8, 1e30, log=True, doc="coefficient"),
            Parameter("alpha", 1e-4, 5.0, doc="exponent in pretraining tokens"),
        ]

    def prepare(self, data: pd.DataFrame, *, for_fit: bool = True, **options: Any) -> Prepared:
        require_columns(data, self.inputs, self.name)
        d = positive_column(data, "tokens", self.name)
        y, mask = loss_column(data, self.name, for_fit)
        return Prepared(y, mask, group_ids(data), scale=d, extra={"logD": np.log(d)})

    def predict(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        e, a, alpha = (np.atleast_2d(theta)[:, j, None] for j in range(3))
        return e + a * np.exp(-alpha * prep.extra["logD"])

    def gradient(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        theta = np.atleast_2d(theta)
        _, a, alpha = (theta[:, j, None] for j in range(3))
        term = np.exp(-alpha * prep.extra["logD"])
        out = np.empty((theta.shape[0], prep.n_rows, 3))
        out[:, :, 0] = 1.0
        out[:, :, 1] = term
        out[:, :, 2] = -a * term * prep.extra["logD"]
        return out

    def starts(self, prep: Prepared) -> np.ndarray:
        # A is set so that each start passes through the median point.
        y = prep.y[prep.fit_mask]
        ld = float(np.median(prep.extra["logD"][prep.fit_mask]))
        rows = []
        for frac, alpha in grid([0.0, 0.5, 0.8, 0.9, 0.97], [0.05, 0.1, 0.2, 0.4, 0.8, 1.5]):
            e = frac * float(np.min(y))
            log_a = np.log(max(float(np.median(y)) - e, 1e-6)) + alpha * ld
            rows.append([e, float(np.exp(np.clip(log_a, -18.0, 69.0))), alpha])
        return np.array(rows)

    def guess(self, prep: Prepared) -> np.ndarray:
        return self.starts(prep)[2 * 6 + 2]  # E at half the lowest loss, alpha 0.2

    def example(self, rng: np.random.Generator) -> tuple[dict[str, float], pd.DataFrame]:
        truth = {"E": 0.9, "A": 150.0, "alpha": 0.25}
        frame = pd.DataFrame({"tokens": np.geomspace(1e8, 1e12, 14)})
        clean = self.predict(np.array([list(truth.values())]), self.prepare(frame, for_fit=False))
        frame["loss"] = clean[0] * np.exp(rng.normal(0.0, 0.002, len(frame)))
        return truth, frame
