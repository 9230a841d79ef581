"""Over-training (Gadre et al. 2024, "Language models scale reliably with over-training and
on downstream tasks"): one exponent for N and D, written in compute and over-training.

    L(C, M) = E + (a M^eta + b M^-eta) C^-eta        C = 6 N D,  M = D / N

It is Chinchilla's law with alpha = beta = 2 eta (A = a 6^-eta, B = b 6^-eta); for a fixed
tokens-per-parameter ratio M the reducible loss is a power law in C, so small runs at the
ratio one means to over-train at predict the large one. The compute-optimal ratio is the
same at every budget, ``M* = (b / a)^(1 / (2 eta))``.
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
    grid,
    group_ids,
    loss_column,
    positive_column,
    require_columns,
)


class Overtrained(Law):
    """Loss in compute C and tokens per parameter M with one shared exponent eta."""

    name: ClassVar[str] = "overtrained"
    formula: ClassVar[str] = "L = E + (a M^eta + b M^-eta) C^-eta,  C = 6ND, M = D/N"
    description: ClassVar[str] = (
        "Gadre et al. 2024: the Chinchilla form with one exponent for N and D, in compute "
        "C and over-training ratio M = D/N; for fixed M the loss is a power law in C. E "
        "estimates the irreducible loss; the compute-optimal M is the same at every budget."
    )
    inputs: ClassVar[tuple[str, ...]] = ("params", "tokens")
    irreducible: ClassVar[str | None] = "E"
    sizes: ClassVar[tuple[str, ...]] = ("params", "tokens")
    analyses: ClassVar[frozenset[str]] = frozenset(
        {"kl_decomposition", "size_for_reducible_loss", "compute_optimal"}
    )

    def parameters(self, data: pd.DataFrame | None = None, **options: Any) -> list[Parameter]:
        return [
            Parameter("E", 1e-4, 50.0, log=True, doc="irreducible loss"),
            Parameter("a", 1e-8, 1e16, log=True, doc="coefficient of M^eta (model-size term)"),
            Parameter("b", 1e-8, 1e16, log=True, doc="coefficient of M^-eta (data term)"),
            Parameter("eta", 1e-3, 2.5, doc="the shared exponent (half Chinchilla's alpha)"),
        ]

    def prepare(self, data: pd.DataFrame, *, for_fit: bool = True, **options: Any) -> Prepared:
        require_columns(data, self.inputs, self.name)
        n = positive_column(data, "params", self.name)
        d = positive_column(data, "tokens", self.name)
        y, mask = loss_column(data, self.name, for_fit)
        log_c = np.log(6.0 * n) + np.log(d)
        return Prepared(
            y=y,
            fit_mask=mask,
            groups=group_ids(data),
            scale=np.exp(log_c),
            extra={"logC": log_c, "logM": np.log(d) - np.log(n)},
        )

    def predict(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        e, a, b, eta = (np.atleast_2d(theta)[:, j, None] for j in range(4))
        lc, lm = prep.extra["logC"], prep.extra["logM"]
        return e + a * np.exp(eta * (lm - lc)) + b * np.exp(-eta * (lm + lc))

    def gradient(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        theta = np.atleast_2d(theta)
        _, a, b, eta = (theta[:, j, None] for j in range(4))
        lc, lm = prep.extra["logC"], prep.extra["logM"]
        tm = np.exp(eta * (lm - lc))
        td = np.exp(-eta * (lm + lc))
        out = np.empty((theta.shape[0], prep.n_rows, 4))
        out[:, :, 0] = 1.0
        out[:, :, 1] = tm
        out[:, :, 2] = td
        out[:, :, 3] = a * tm * (lm - lc) - b * td * (lm + lc)
        return out

    def starts(self, prep: Prepared) -> np.ndarray:
        # Hoffmann et al.'s grid in Gadre et al.'s parametrisation (eta = alpha / 2).
        e = np.exp(np.arange(-1.0, 1.01, 0.5))
        ab = np.exp(np.arange(0.0, 25.1, 2.5))
        eta = np.arange(0.05, 1.01, 0.1)
        return grid(e, ab, ab, eta)

    def guess(self, prep: Prepared) -> np.ndarray:
        y = prep.y[prep.fit_mask]
        e = 0.8 * float(np.min(y))
        half = max(float(np.mean(y)) - e, 1e-3) / 2
        scale = half * float(np.exp(0.15 * np.mean(prep.extra["logC"])))
        return np.array([e, scale, scale, 0.15])

    def compute_optimum(self, p: Mapping[str, float], flops: np.ndarray) -> tuple[np.ndarray, ...]:
        """``M* = (b / a)^(1/(2 eta))`` minimises ``a M^eta + b M^-eta`` at every C;
        ``N = sqrt(C / (6 M*))``, ``D = M* N``."""
        m = (p["b"] / p["a"]) ** (1.0 / (2.0 * p["eta"]))
        n = np.sqrt(flops / (6.0 * m))
        d = m * n
        loss = p["E"] + (p["a"] * m ** p["eta"] + p["b"] * m ** -p["eta"]) * flops ** -p["eta"]
        return n, d, loss

    def reducible_size(
        self, p: Mapping[str, float], reducible: np.ndarray, options: Mapping[str, Any]
    ) -> np.ndarray:
        """N with infinite data: the model-size term ``a 6^-eta N^(-2 eta) = R``."""
        return (p["a"] * 6.0 ** -p["eta"] / reducible) ** (1.0 / (2.0 * p["eta"]))

    def example(self, rng: np.random.Generator) -> tuple[dict[str, float], pd.DataFrame]:
        # Gadre et al.'s design: each size at tokens-per-parameter ratios 5 to 640.
        truth = {"E": 1.9, "a": 60.0, "b": 400.0, "eta": 0.15}
        n, mult = np.meshgrid(np.geomspace(1e7, 1e10, 8), 20.0 * 2.0 ** np.arange(-2, 6))
        frame = pd.DataFrame({"params": n.ravel(), "tokens": (mult * n).ravel()})
        clean = self.predict(np.array([list(truth.values())]), self.prepare(frame, for_fit=False))
        frame["loss"] = clean[0] * np.exp(rng.normal(0.0, 0.002, len(frame)))
        return truth, frame
