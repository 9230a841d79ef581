"""Chinchilla law (Hoffmann et al. 2022; Besiroglu et al. 2024): L = E + A/N^alpha + B/D^beta."""

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


class Chinchilla(Law):
    """Loss as a function of parameters N and training tokens D."""

    name: ClassVar[str] = "chinchilla"
    formula: ClassVar[str] = "L = E + A / N^alpha + B / D^beta"
    description: ClassVar[str] = (
        "Hoffmann et al. 2022 parametric loss in model size N and data D; E estimates the "
        "irreducible loss. Compute-optimal allocation follows in closed form (C = 6ND)."
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
            Parameter("A", 1e-8, 1e16, log=True, doc="model-size coefficient"),
            Parameter("B", 1e-8, 1e16, log=True, doc="data coefficient"),
            Parameter("alpha", 0.0, 5.0, doc="model-size exponent"),
            Parameter("beta", 0.0, 5.0, doc="data exponent"),
        ]

    def prepare(self, data: pd.DataFrame, *, for_fit: bool = True, **options: Any) -> Prepared:
        require_columns(data, self.inputs, self.name)
        n = positive_column(data, "params", self.name)
        d = positive_column(data, "tokens", self.name)
        y, mask = loss_column(data, self.name, for_fit)
        return Prepared(
            y=y,
            fit_mask=mask,
            groups=group_ids(data),
            scale=6.0 * n * d,  # compute: the extrapolation test holds out the largest C
            extra={"logN": np.log(n), "logD": np.log(d)},
        )

    def predict(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        e, a, b, alpha, beta = (np.atleast_2d(theta)[:, j, None] for j in range(5))
        return e + a * np.exp(-alpha * prep.extra["logN"]) + b * np.exp(-beta * prep.extra["logD"])

    def gradient(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        theta = np.atleast_2d(theta)
        _, a, b, alpha, beta = (theta[:, j, None] for j in range(5))
        log_n, log_d = prep.extra["logN"], prep.extra["logD"]
        tn = np.exp(-alpha * log_n)
        td = np.exp(-beta * log_d)
        out = np.empty((theta.shape[0], prep.n_rows, 5))
        out[:, :, 0] = 1.0
        out[:, :, 1] = tn
        out[:, :, 2] = td
        out[:, :, 3] = -a * log_n * tn
        out[:, :, 4] = -b * log_d * td
        return out

    def starts(self, prep: Prepared) -> np.ndarray:
        # Hoffmann et al.'s grid, as in Besiroglu et al.: 5 * 5 * 5 * 6 * 6 = 4,500 starts.
        e = np.exp(np.arange(-1.0, 1.01, 0.5))
        ab = np.exp(np.arange(0.0, 25.1, 5.0))
        ex = np.arange(0.0, 2.01, 0.5)
        return grid(e, ab, ab, ex, ex)

    def guess(self, prep: Prepared) -> np.ndarray:
        y = prep.y[prep.fit_mask]
        e = 0.8 * float(np.min(y))
        half = max(float(np.mean(y)) - e, 1e-3) / 2
        a = half * float(np.exp(0.3 * np.mean(prep.extra["logN"])))
        b = half * float(np.exp(0.3 * np.mean(prep.extra["logD"])))
        return np.array([e, a, b, 0.3, 0.3])

    def compute_optimum(self, p: Mapping[str, float], flops: np.ndarray) -> tuple[np.ndarray, ...]:
        """The closed form (Hoffmann et al. 2022, Appendix D.2):
        ``G = (alpha A / (beta B))^(1/(alpha+beta))``, ``N_opt = G (C/6)^(beta/(alpha+beta))``,
        ``D_opt = C / (6 N_opt)``."""
        s = p["alpha"] + p["beta"]
        g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1.0 / s)
        n = g * (flops / 6.0) ** (p["beta"] / s)
        d = flops / (6.0 * n)
        return n, d, p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]

    def reducible_size(
        self, p: Mapping[str, float], reducible: np.ndarray, options: Mapping[str, Any]
    ) -> np.ndarray:
        """N with infinite data: ``N = (A / R)^(1/alpha)``."""
        return (p["A"] / reducible) ** (1.0 / p["alpha"])

    def example(self, rng: np.random.Generator) -> tuple[dict[str, float], pd.DataFrame]:
        truth = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37}
        n, d = np.meshgrid(np.geomspace(1e6, 1e11, 8), np.geomspace(1e8, 1e13, 8))
        frame = pd.DataFrame({"params": n.ravel(), "tokens": d.ravel()})
        theta = np.array([list(truth.values())])
        clean = self.predict(theta, self.prepare(frame, for_fit=False))[0]
        frame["loss"] = clean * np.exp(rng.normal(0.0, 0.003, len(frame)))
        return truth, frame
