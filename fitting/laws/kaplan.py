"""Kaplan et al. 2020 joint law: L = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D."""

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


class Kaplan(Law):
    """Loss in parameters N and tokens D with no irreducible term."""

    name: ClassVar[str] = "kaplan"
    formula: ClassVar[str] = "L = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D"
    description: ClassVar[str] = (
        "Kaplan et al. 2020 joint dependence on model size N and data D (no irreducible "
        "loss); N is best the non-embedding parameter count."
    )
    inputs: ClassVar[tuple[str, ...]] = ("params", "tokens")
    sizes: ClassVar[tuple[str, ...]] = ("params", "tokens")
    analyses: ClassVar[frozenset[str]] = frozenset({"compute_optimal"})

    def parameters(self, data: pd.DataFrame | None = None, **options: Any) -> list[Parameter]:
        return [
            Parameter("N_c", 1e-10, 1e40, log=True, doc="critical model size"),
            Parameter("D_c", 1e-10, 1e40, log=True, doc="critical data size"),
            Parameter("alpha_N", 1e-4, 3.0, doc="model-size exponent"),
            Parameter("alpha_D", 1e-4, 3.0, doc="data exponent"),
        ]

    def prepare(self, data: pd.DataFrame, *, for_fit: bool = True, **options: Any) -> Prepared:
        require_columns(data, self.inputs, self.name)
        n = positive_column(data, "params", self.name)
        d = positive_column(data, "tokens", self.name)
        y, mask = loss_column(data, self.name, for_fit)
        return Prepared(
            y, mask, group_ids(data), 6.0 * n * d, extra={"logN": np.log(n), "logD": np.log(d)}
        )

    def _terms(self, theta: np.ndarray, prep: Prepared) -> tuple[np.ndarray, ...]:
        n_c, d_c, a_n, a_d = (np.atleast_2d(theta)[:, j, None] for j in range(4))
        log_ratio = np.log(n_c) - prep.extra["logN"]
        with np.errstate(over="ignore"):  # a wild start may overflow: it is just rejected
            u = np.exp(a_n / a_d * log_ratio)
            v = np.exp(np.log(d_c) - prep.extra["logD"])
        return u, v, log_ratio, a_n, a_d, d_c, n_c

    def predict(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        u, v, _, _, a_d, _, _ = self._terms(theta, prep)
        with np.errstate(over="ignore"):
            return np.exp(a_d * np.log(u + v))

    def gradient(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        u, v, log_ratio, a_n, a_d, d_c, n_c = self._terms(theta, prep)
        s = u + v
        with np.errstate(over="ignore", invalid="ignore"):
            loss = np.exp(a_d * np.log(s))
        ds = loss / s  # s^(alpha_D - 1)
        out = np.empty((u.shape[0], prep.n_rows, 4))
        out[:, :, 0] = a_n * ds * u / n_c
        out[:, :, 1] = a_d * ds * v / d_c
        out[:, :, 2] = ds * u * log_ratio
        out[:, :, 3] = loss * np.log(s) - ds * u * log_ratio * a_n / a_d
        return out

    def starts(self, prep: Prepared) -> np.ndarray:
        # N_c and D_c are set so each start's two terms are similar at the median point.
        y = float(np.median(prep.y[prep.fit_mask]))
        ln = float(np.median(prep.extra["logN"]))
        ld = float(np.median(prep.extra["logD"]))
        rows = []
        for a_n in (0.03, 0.07, 0.15, 0.3, 0.6):
            for a_d in (0.03, 0.07, 0.15, 0.3, 0.6):
                log_half = np.log(y) / a_d - np.log(2.0)
                for shift in (-3.0, 0.0, 3.0):
                    log_nc = ln + (log_half + shift) * a_d / a_n
                    log_dc = ld + log_half - shift
                    rows.append(
                        [
                            np.exp(np.clip(log_nc, -23, 92)),
                            np.exp(np.clip(log_dc, -23, 92)),
                            a_n,
                            a_d,
                        ]
                    )
        return np.array(rows)

    def guess(self, prep: Prepared) -> np.ndarray:
        return self.starts(prep)[3 * 5 * 1 + 3 * 1 + 1]  # alpha_N 0.07, alpha_D 0.07, middle

    def compute_optimum(self, p: Mapping[str, float], flops: np.ndarray) -> tuple[np.ndarray, ...]:
        """No closed form: N minimises L(N, C / 6N) by a bounded 1-D search in log N."""
        from scipy.optimize import minimize_scalar

        def log_loss(log_n: float, c: float) -> float:
            n, d = np.exp(log_n), c / (6.0 * np.exp(log_n))
            u = (p["N_c"] / n) ** (p["alpha_N"] / p["alpha_D"])
            return float(p["alpha_D"] * np.log(u + p["D_c"] / d))  # log L: same minimiser

        found = [
            minimize_scalar(
                log_loss,
                bounds=(0.0, np.log(c / 6.0)),
                args=(c,),
                method="bounded",
                options={"xatol": 1e-10},
            ).x
            for c in flops
        ]
        n = np.exp(np.array(found))
        d = flops / (6.0 * n)
        u = (p["N_c"] / n) ** (p["alpha_N"] / p["alpha_D"])
        return n, d, (u + p["D_c"] / d) ** p["alpha_D"]

    def example(self, rng: np.random.Generator) -> tuple[dict[str, float], pd.DataFrame]:
        truth = {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}
        n, d = np.meshgrid(np.geomspace(1e6, 1e10, 7), np.geomspace(1e8, 1e12, 7))
        frame = pd.DataFrame({"params": n.ravel(), "tokens": d.ravel()})
        clean = self.predict(np.array([list(truth.values())]), self.prepare(frame, for_fit=False))
        frame["loss"] = clean[0] * np.exp(rng.normal(0.0, 0.002, len(frame)))
        return truth, frame
