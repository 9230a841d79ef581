"""Power law plus constant (Henighan et al. 2020): L = L_inf + (x0 / x)^alpha."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fitting.laws.base import Parameter, Prepared
from fitting.laws.one_input import OneInputLaw


class PowerLaw(OneInputLaw):
    """One size variable x (parameters, tokens, FLOPs or step); L_inf is the data's entropy."""

    name: ClassVar[str] = "power_law"
    formula: ClassVar[str] = "L = L_inf + (x0 / x)^alpha"
    description: ClassVar[str] = (
        "Henighan et al. 2020 power law plus constant in one size variable x; L_inf "
        "estimates the entropy of the data (irreducible loss), the power term the KL "
        "divergence (reducible loss)."
    )
    irreducible: ClassVar[str | None] = "L_inf"
    analyses: ClassVar[frozenset[str]] = frozenset({"kl_decomposition", "size_for_reducible_loss"})

    def parameters(self, data: pd.DataFrame | None = None, **options: Any) -> list[Parameter]:
        return [
            Parameter("L_inf", 0.0, 100.0, doc="irreducible loss (entropy of the data)"),
            Parameter("x0", 1e-30, 1e30, log=True, doc="scale where the reducible loss is 1"),
            Parameter("alpha", 1e-4, 5.0, doc="exponent"),
        ]

    def predict(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        l_inf, x0, alpha = (np.atleast_2d(theta)[:, j, None] for j in range(3))
        return l_inf + np.exp(alpha * (np.log(x0) - prep.extra["logx"]))

    def gradient(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        theta = np.atleast_2d(theta)
        _, x0, alpha = (theta[:, j, None] for j in range(3))
        log_ratio = np.log(x0) - prep.extra["logx"]
        term = np.exp(alpha * log_ratio)
        out = np.empty((theta.shape[0], prep.n_rows, 3))
        out[:, :, 0] = 1.0
        out[:, :, 1] = alpha * term / x0
        out[:, :, 2] = term * log_ratio
        return out

    def starts(self, prep: Prepared) -> np.ndarray:
        # x0 is set so that each start passes through the median point of the data.
        y = prep.y[prep.fit_mask]
        logx = prep.extra["logx"][prep.fit_mask]
        y_mid, lx_mid = float(np.median(y)), float(np.median(logx))
        rows = []
        for frac in (0.0, 0.3, 0.6, 0.8, 0.9, 0.95, 0.99):
            l_inf = frac * float(np.min(y))
            for alpha in (0.03, 0.07, 0.15, 0.3, 0.5, 0.8, 1.2):
                for shift in (-2.0, 0.0, 2.0):
                    log_x0 = lx_mid + np.log(max(y_mid - l_inf, 1e-6)) / alpha + shift / alpha
                    rows.append([l_inf, float(np.exp(np.clip(log_x0, -69.0, 69.0))), alpha])
        return np.array(rows)

    def guess(self, prep: Prepared) -> np.ndarray:
        y = prep.y[prep.fit_mask]
        l_inf = 0.5 * float(np.min(y))
        lx_mid = float(np.median(prep.extra["logx"][prep.fit_mask]))
        log_x0 = lx_mid + np.log(max(float(np.median(y)) - l_inf, 1e-6)) / 0.3
        return np.array([l_inf, float(np.exp(np.clip(log_x0, -69.0, 69.0))), 0.3])

    def reducible_size(
        self, p: Mapping[str, float], reducible: np.ndarray, options: Mapping[str, Any]
    ) -> np.ndarray:
        """x = x0 * R^(-1/alpha), in the fit's x column."""
        return p["x0"] * reducible ** (-1.0 / p["alpha"])

    def example(self, rng: np.random.Generator) -> tuple[dict[str, float], pd.DataFrame]:
        truth = {"L_inf": 1.7, "x0": 3e4, "alpha": 0.3}
        frame = pd.DataFrame({"params": np.geomspace(1e6, 1e10, 14)})
        clean = self.predict(np.array([list(truth.values())]), self.prepare(frame, for_fit=False))
        frame["loss"] = clean[0] * np.exp(rng.normal(0.0, 0.002, len(frame)))
        return truth, frame
