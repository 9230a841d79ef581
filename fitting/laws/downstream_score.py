"""Downstream score log-law (Isik et al. 2024, "Scaling Laws for Downstream Task Performance
of Large Language Models"): BLEU (or another score that rises) after finetuning, in the
pretraining tokens D_p.

    f(D_p) = (log(A D_p^alpha))^beta

The score goes in the ``loss`` column (the engine fits that column; a score is positive, so
the default log residuals are relative errors). It predicts BLEU well when pretraining and
downstream data are aligned; with misalignment the score can fluctuate while the downstream
cross-entropy (`fitting.laws.downstream`) still falls.
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

TINY = 1e-12  # log(A D^alpha) must be positive; below, the score is taken as ~0


class DownstreamScore(Law):
    """A downstream score (BLEU, accuracy...) that rises with pretraining tokens."""

    name: ClassVar[str] = "downstream_score"
    formula: ClassVar[str] = "score = (log(A D_p^alpha))^beta   (D_p: pretraining tokens)"
    description: ClassVar[str] = (
        "Isik et al. 2024: a downstream score such as BLEU (in the loss column) as a log-law "
        "in the pretraining tokens D_p (column tokens); good when pretraining and downstream "
        "data are aligned."
    )
    inputs: ClassVar[tuple[str, ...]] = ("tokens",)
    sizes: ClassVar[tuple[str, ...]] = ("tokens",)
    rising: ClassVar[bool] = True

    def parameters(self, data: pd.DataFrame | None = None, **options: Any) -> list[Parameter]:
        return [
            Parameter("A", 1e-30, 1e30, log=True, doc="scale inside the log"),
            Parameter("alpha", 1e-4, 5.0, doc="exponent of D_p inside the log"),
            Parameter("beta", 1e-3, 20.0, doc="outer exponent"),
        ]

    def prepare(self, data: pd.DataFrame, *, for_fit: bool = True, **options: Any) -> Prepared:
        require_columns(data, self.inputs, self.name)
        d = positive_column(data, "tokens", self.name)
        y, mask = loss_column(data, self.name, for_fit)
        return Prepared(y, mask, group_ids(data), scale=d, extra={"logD": np.log(d)})

    def _inner(self, theta: np.ndarray, prep: Prepared) -> tuple[np.ndarray, ...]:
        a, alpha, beta = (np.atleast_2d(theta)[:, j, None] for j in range(3))
        u = np.log(a) + alpha * prep.extra["logD"]
        return a, alpha, beta, np.maximum(u, TINY), u > TINY

    def predict(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        _, _, beta, u, _ = self._inner(theta, prep)
        return np.exp(beta * np.log(u))

    def gradient(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        a, _, beta, u, inside = self._inner(theta, prep)
        f = np.exp(beta * np.log(u))
        df_du = np.where(inside, beta * f / u, 0.0)
        out = np.empty((a.shape[0], prep.n_rows, 3))
        out[:, :, 0] = df_du / a
        out[:, :, 1] = df_du * prep.extra["logD"]
        out[:, :, 2] = f * np.log(u)
        return out

    def starts(self, prep: Prepared) -> np.ndarray:
        # log A is set so that each start passes through the median point.
        y = np.maximum(prep.y[prep.fit_mask], TINY)
        ld = float(np.median(prep.extra["logD"][prep.fit_mask]))
        rows = []
        for alpha, beta in grid([0.05, 0.1, 0.3, 0.6, 1.0, 2.0], [0.5, 1.0, 1.5, 2.0, 3.0, 5.0]):
            log_a = float(np.median(y)) ** (1.0 / beta) - alpha * ld
            rows.append([float(np.exp(np.clip(log_a, -69.0, 69.0))), alpha, beta])
        return np.array(rows)

    def guess(self, prep: Prepared) -> np.ndarray:
        return self.starts(prep)[2 * 6 + 2]  # alpha 0.3, beta 1.5

    def example(self, rng: np.random.Generator) -> tuple[dict[str, float], pd.DataFrame]:
        truth = {"A": float(np.exp(-8.0)), "alpha": 0.5, "beta": 2.2}
        frame = pd.DataFrame({"tokens": np.geomspace(1e8, 1e11, 14)})
        clean = self.predict(np.array([list(truth.values())]), self.prepare(frame, for_fit=False))
        frame["loss"] = clean[0] * np.exp(rng.normal(0.0, 0.003, len(frame)))
        return truth, frame
