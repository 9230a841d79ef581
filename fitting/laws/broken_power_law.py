"""Broken power law with one break (Caballero et al. 2022, "Broken Neural Scaling Laws").

    y = a + b x^(-c0) (1 + (x / d1)^(1 / f1))^(-c1 f1)

Below the break d1 the slope in log-log is -c0, above it -(c0 + c1); f1 sets how sharp the
bend is. One break covers most curves that bend (n breaks multiply such factors). ``a`` is
the limit at large x (the irreducible loss). The size x is one column, as for `power_law`
(option ``x``: params, tokens, flops or step).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fitting.laws.base import Parameter, Prepared
from fitting.laws.one_input import OneInputLaw


class BrokenPowerLaw(OneInputLaw):
    """A power law whose exponent changes smoothly once, at x = d1."""

    name: ClassVar[str] = "broken_power_law"
    formula: ClassVar[str] = "L = a + b x^-c0 (1 + (x / d1)^(1/f1))^(-c1 f1)"
    description: ClassVar[str] = (
        "Caballero et al. 2022 broken neural scaling law with one break in one size "
        "variable x: slope -c0 below the break d1, -(c0 + c1) above it, sharpness f1; a "
        "estimates the irreducible loss."
    )
    irreducible: ClassVar[str | None] = "a"
    analyses: ClassVar[frozenset[str]] = frozenset({"kl_decomposition"})

    def parameters(self, data: pd.DataFrame | None = None, **options: Any) -> list[Parameter]:
        return [
            Parameter("a", 0.0, 100.0, doc="limit at large x (irreducible loss)"),
            Parameter("b", 1e-30, 1e30, log=True, doc="scale of the reducible term"),
            Parameter("c0", 0.0, 5.0, doc="exponent below the break"),
            Parameter("c1", -5.0, 5.0, doc="change of exponent at the break"),
            Parameter("d1", 1e-30, 1e30, log=True, doc="where the break is"),
            Parameter("f1", 1e-3, 10.0, log=True, doc="sharpness of the break (smaller: sharper)"),
        ]

    def _terms(self, theta: np.ndarray, prep: Prepared) -> tuple[np.ndarray, ...]:
        a, b, c0, c1, d1, f1 = (np.atleast_2d(theta)[:, j, None] for j in range(6))
        lx = prep.extra["logx"]
        log_r = (lx - np.log(d1)) / f1  # log of (x / d1)^(1/f1)
        s = np.logaddexp(0.0, log_r)  # log(1 + r), without overflow
        term = np.exp(np.log(b) - c0 * lx - c1 * f1 * s)
        share = np.exp(log_r - s)  # r / (1 + r)
        return a, b, c0, c1, d1, f1, lx, log_r, s, term, share

    def predict(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        a, *_, term, _ = self._terms(theta, prep)
        return a + term

    def gradient(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        a, b, _, c1, d1, f1, lx, log_r, s, term, share = self._terms(theta, prep)
        out = np.empty((a.shape[0], prep.n_rows, 6))
        out[:, :, 0] = 1.0
        out[:, :, 1] = term / b
        out[:, :, 2] = -term * lx
        out[:, :, 3] = -term * f1 * s
        out[:, :, 4] = term * c1 * share / d1
        out[:, :, 5] = -c1 * term * (s - share * log_r)
        return out

    def starts(self, prep: Prepared) -> np.ndarray:
        # Breaks at quantiles of the data's log x; b set so each start passes through the
        # median point (before the break's factor).
        y = prep.y[prep.fit_mask]
        lx = prep.extra["logx"][prep.fit_mask]
        y_mid, lx_mid = float(np.median(y)), float(np.median(lx))
        rows = []
        for frac in (0.0, 0.5, 0.9):
            a = frac * float(np.min(y))
            for c0 in (0.05, 0.2, 0.5):
                log_b = np.log(max(y_mid - a, 1e-6)) + c0 * lx_mid
                for c1 in (-0.3, 0.2, 0.6):
                    for q in (0.25, 0.5, 0.75):
                        d1 = float(np.exp(np.quantile(lx, q)))
                        for f1 in (0.3, 1.0):
                            b = float(np.exp(np.clip(log_b, -69.0, 69.0)))
                            rows.append([a, b, c0, c1, d1, f1])
        return np.array(rows)

    def guess(self, prep: Prepared) -> np.ndarray:
        y = prep.y[prep.fit_mask]
        lx = prep.extra["logx"][prep.fit_mask]
        a = 0.5 * float(np.min(y))
        log_b = np.log(max(float(np.median(y)) - a, 1e-6)) + 0.2 * float(np.median(lx))
        d1 = float(np.exp(np.median(lx)))
        return np.array([a, float(np.exp(np.clip(log_b, -69.0, 69.0))), 0.2, 0.2, d1, 1.0])

    def example(self, rng: np.random.Generator) -> tuple[dict[str, float], pd.DataFrame]:
        # A curve that steepens tenfold-wide around x = 1e6 (slope 0.1 -> 0.5).
        truth = {"a": 1.5, "b": 8.0, "c0": 0.1, "c1": 0.4, "d1": 1e6, "f1": 0.5}
        frame = pd.DataFrame({"params": np.geomspace(1e3, 1e9, 30)})
        clean = self.predict(np.array([list(truth.values())]), self.prepare(frame, for_fit=False))
        frame["loss"] = clean[0] * np.exp(rng.normal(0.0, 0.001, len(frame)))
        return truth, frame
