"""Loss to downstream error (Gadre et al. 2024, "Language models scale reliably with
over-training and on downstream tasks"): a model's average top-1 error on downstream tasks
as a function of its loss L on a reference validation set (C4 in the paper).

    Err(L) = eps - k exp(-gamma L)

eps is the error of a model that has learnt nothing useful (the chance level the error
rises to as L grows); below it the error falls exponentially as the loss falls. With a law
of the loss in N and D (`fitting.laws.overtrained`, `chinchilla`), it predicts the
downstream error of a model before it is trained.

Data: the error goes in the ``loss`` column (the column the engine fits, as for
`fitting.laws.downstream_score`), the model's validation loss in ``model_loss``. The error
rises with ``model_loss``, so the law is ``rising`` (no "rises with" doubt). Its one
derived analysis, `fitting.analyses.loss_for_error`, inverts the law: the model loss that
reaches a target error (the law's ``loss_at_error`` hook).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fitting.laws.base import (
    Law,
    Parameter,
    Prepared,
    group_ids,
    loss_column,
    positive_column,
    require_columns,
)

INPUT = "model_loss"
GAMMAS = (0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 2.5, 4.0, 7.0)  # the start grid's exponents
K_FLOOR = 1e-8  # the lower bound of k: a start below it is lifted to it


class DownstreamError(Law):
    """Average downstream top-1 error as an exponential in the model's loss."""

    name: ClassVar[str] = "downstream_error"
    formula: ClassVar[str] = "Err = eps - k exp(-gamma L)   (L: the model's loss, model_loss)"
    description: ClassVar[str] = (
        "Gadre et al. 2024: average top-1 downstream error (in the loss column) as a "
        "function of the model's validation loss L (column model_loss); eps is the error "
        "the curve rises to (chance). Analysis: the model loss that reaches a target error."
    )
    inputs: ClassVar[tuple[str, ...]] = (INPUT,)
    sizes: ClassVar[tuple[str, ...]] = (INPUT,)
    # The error rises with the model's loss: a rising curve in its one input.
    rising: ClassVar[bool] = True
    analyses: ClassVar[frozenset[str]] = frozenset({"loss_for_error"})

    def parameters(self, data: pd.DataFrame | None = None, **options: Any) -> list[Parameter]:
        return [
            Parameter("eps", 0.0, 100.0, doc="the error as the loss grows (chance level)"),
            Parameter("k", K_FLOOR, 1e12, log=True, doc="coefficient of the exponential"),
            Parameter("gamma", 1e-3, 50.0, doc="rate per nat of loss"),
        ]

    def prepare(self, data: pd.DataFrame, *, for_fit: bool = True, **options: Any) -> Prepared:
        require_columns(data, self.inputs, self.name)
        loss = positive_column(data, INPUT, self.name)
        y, mask = loss_column(data, self.name, for_fit)
        # The extrapolation test holds out the largest scale: here the lowest losses (the
        # biggest models), so the scale falls with the loss.
        return Prepared(y, mask, group_ids(data), scale=np.exp(-loss), extra={"L": loss})

    def predict(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        eps, k, gamma = (np.atleast_2d(theta)[:, j, None] for j in range(3))
        return eps - k * np.exp(-gamma * prep.extra["L"])

    def gradient(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        theta = np.atleast_2d(theta)
        _, k, gamma = (theta[:, j, None] for j in range(3))
        loss = prep.extra["L"]
        term = np.exp(-gamma * loss)
        out = np.empty((theta.shape[0], prep.n_rows, 3))
        out[:, :, 0] = 1.0
        out[:, :, 1] = -term
        out[:, :, 2] = k * loss * term
        return out

    def starts(self, prep: Prepared) -> np.ndarray:
        # For a fixed gamma the law is linear in (eps, k): each start is the least-squares
        # line through the data at one gamma of the grid.
        y = prep.y[prep.fit_mask]
        loss = prep.extra["L"][prep.fit_mask]
        rows = []
        for gamma in GAMMAS:
            design = np.column_stack([np.ones_like(loss), -np.exp(-gamma * loss)])
            (eps, k), *_ = np.linalg.lstsq(design, y, rcond=None)
            if not (np.isfinite(eps) and np.isfinite(k)) or k <= 0:
                eps, k = float(np.max(y)) * 1.1, K_FLOOR
            rows.append([float(eps), float(k), gamma])
        return np.array(rows)

    def guess(self, prep: Prepared) -> np.ndarray:
        starts = self.starts(prep)
        y = prep.y[prep.fit_mask]
        fitted = self.predict(starts, prep)[:, prep.fit_mask]
        return starts[int(np.argmin(np.sum((fitted - y) ** 2, axis=1)))]

    def loss_at_error(self, p: Mapping[str, float], error: np.ndarray) -> np.ndarray:
        """``loss_for_error``: the model loss L with Err(L) = ``error``,
        ``L = -log((eps - error) / k) / gamma`` (NaN where the error is not below eps)."""
        gap = p["eps"] - np.asarray(error, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gap > 0, -np.log(gap / p["k"]) / p["gamma"], np.nan)

    def example(self, rng: np.random.Generator) -> tuple[dict[str, float], pd.DataFrame]:
        # Errors from 0.33 to 0.75 over C4-like losses of 2.5 to 5 nats, about the range of
        # Gadre et al.'s 17-task average; 0.5% relative noise.
        truth = {"eps": 0.82, "k": 6.0, "gamma": 1.0}
        frame = pd.DataFrame({INPUT: np.linspace(2.5, 5.0, 24)})
        clean = self.predict(np.array([list(truth.values())]), self.prepare(frame, for_fit=False))
        frame["loss"] = clean[0] * np.exp(rng.normal(0.0, 0.005, len(frame)))
        return truth, frame
