"""Data-constrained scaling (Muennighoff et al. 2023, "Scaling Data-Constrained Language
Models"): the Chinchilla form in effective data D' and effective parameters N'.

    L = E + A / N'^alpha + B / D'^beta
    D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)),   R_D = D / U_D - 1   (epochs beyond the first)
    N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)),   R_N = N / U_N - 1,  U_N = min(N_opt(U_D), N)

U_D is the number of unique tokens (``unique_tokens``; a run that saw fewer tokens than that
saw each once: U_D = min(unique, D)). N_opt(U_D) is the size Chinchilla's allocation pairs
with U_D tokens: where alpha A / N^alpha = beta B / D^beta, i.e.
``N_opt(U) = (alpha A / (beta B))^(1/alpha) U^(beta/alpha)``. Repeated tokens (and
parameters beyond what the unique data can use) decay in value with the constants R_D* and
R_N* (reported fits: about 15.4 and 5.3).
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

NAMES = ("E", "A", "B", "alpha", "beta", "R_D", "R_N")


def _effective(u: np.ndarray, r: np.ndarray, star: np.ndarray) -> tuple[np.ndarray, ...]:
    """(X', dX'/dR*, e) of X' = U + U R* (1 - exp(-R / R*))."""
    e = np.exp(-r / star)
    value = u + u * star * (1.0 - e)
    d_star = u * ((1.0 - e) - (r / star) * e)
    return value, d_star, e


class DataConstrained(Law):
    """Loss of models trained for several epochs on a limited number of unique tokens."""

    name: ClassVar[str] = "data_constrained"
    formula: ClassVar[str] = (
        "L = E + A / N'^alpha + B / D'^beta;  D' = U_D (1 + R_D (1 - exp(-(D/U_D - 1)/R_D))), "
        "N' likewise with U_N = min(N_opt(U_D), N)"
    )
    description: ClassVar[str] = (
        "Muennighoff et al. 2023: Chinchilla's law in effective data and parameters when the "
        "data repeat (unique_tokens < tokens); R_D and R_N say how fast repeated tokens and "
        "excess parameters lose value. Analyses: the loss of one more epoch, and the epochs "
        "that spend a FLOP budget best on given unique data."
    )
    inputs: ClassVar[tuple[str, ...]] = ("params", "tokens", "unique_tokens")
    irreducible: ClassVar[str | None] = "E"
    sizes: ClassVar[tuple[str, ...]] = ("params", "tokens", "unique_tokens")
    analyses: ClassVar[frozenset[str]] = frozenset(
        {"kl_decomposition", "size_for_reducible_loss", "loss_of_one_more_epoch", "optimal_epochs"}
    )

    def parameters(self, data: pd.DataFrame | None = None, **options: Any) -> list[Parameter]:
        return [
            Parameter("E", 1e-4, 50.0, log=True, doc="irreducible loss"),
            Parameter("A", 1e-8, 1e16, log=True, doc="model-size coefficient"),
            Parameter("B", 1e-8, 1e16, log=True, doc="data coefficient"),
            Parameter("alpha", 0.01, 5.0, doc="model-size exponent"),
            Parameter("beta", 0.01, 5.0, doc="data exponent"),
            Parameter("R_D", 1e-2, 1e4, log=True, doc="decay constant of repeated data"),
            Parameter("R_N", 1e-2, 1e4, log=True, doc="decay constant of excess parameters"),
        ]

    def prepare(self, data: pd.DataFrame, *, for_fit: bool = True, **options: Any) -> Prepared:
        require_columns(data, self.inputs, self.name)
        n = positive_column(data, "params", self.name)
        d = positive_column(data, "tokens", self.name)
        unique = np.minimum(positive_column(data, "unique_tokens", self.name), d)
        y, mask = loss_column(data, self.name, for_fit)
        return Prepared(
            y=y,
            fit_mask=mask,
            groups=group_ids(data),
            scale=6.0 * n * d,
            extra={"N": n, "D": d, "U": unique},
        )

    def _terms(self, theta: np.ndarray, prep: Prepared) -> dict[str, np.ndarray]:
        e, a, b, alpha, beta, r_d, r_n = (np.atleast_2d(theta)[:, j, None] for j in range(7))
        n, d, u = prep.extra["N"], prep.extra["D"], prep.extra["U"]
        d_eff, dd_star, _ = _effective(u, d / u - 1.0, r_d)
        log_ratio = np.log(alpha * a / (beta * b))
        log_nopt = log_ratio / alpha + (beta / alpha) * np.log(u)
        # The unique data cannot use all N parameters where N_opt(U_D) < N; beyond e^40
        # excess parameters per useful one R_N saturates, so U_N is held there (no overflow).
        log_n = np.log(n)
        binding = (log_nopt < log_n) & (log_nopt > log_n - 40.0)
        log_un = np.clip(log_nopt, log_n - 40.0, log_n)
        u_n = np.exp(log_un)
        r_nn = np.expm1(log_n - log_un)
        n_eff, dn_star, e_n = _effective(u_n, r_nn, r_n)
        # dN'/dU_N (where U_N binds): 1 + R_N (1 - e) - e N / U_N
        dn_du = np.where(binding, 1.0 + r_n * (1.0 - e_n) - e_n * n / u_n, 0.0)
        return {
            "E": e,
            "A": a,
            "B": b,
            "alpha": alpha,
            "beta": beta,
            "tN": a * np.exp(-alpha * np.log(n_eff)),
            "tD": b * np.exp(-beta * np.log(d_eff)),
            "n_eff": n_eff,
            "d_eff": d_eff,
            "dd_star": dd_star,
            "dn_star": dn_star,
            "dn_du": dn_du,
            "u_n": u_n,
            "log_ratio": log_ratio,
            "logU": np.log(u),
        }

    def predict(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        t = self._terms(theta, prep)
        return t["E"] + t["tN"] + t["tD"]

    def gradient(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        t = self._terms(theta, prep)
        a, b, alpha, beta = t["A"], t["B"], t["alpha"], t["beta"]
        dl_dn = -alpha * t["tN"] / t["n_eff"]  # dL/dN'
        dl_du = dl_dn * t["dn_du"] * t["u_n"]  # dL/dlog U_N
        # d log N_opt(U_D) / d theta, from log N_opt = log(alpha A / (beta B)) / alpha + ...
        out = np.empty((a.shape[0], prep.n_rows, 7))
        out[:, :, 0] = 1.0
        out[:, :, 1] = t["tN"] / a + dl_du / (alpha * a)
        out[:, :, 2] = t["tD"] / b - dl_du / (alpha * b)
        d_alpha = -t["log_ratio"] / alpha**2 + 1.0 / alpha**2 - beta * t["logU"] / alpha**2
        out[:, :, 3] = -t["tN"] * np.log(t["n_eff"]) + dl_du * d_alpha
        d_beta = -1.0 / (alpha * beta) + t["logU"] / alpha
        out[:, :, 4] = -t["tD"] * np.log(t["d_eff"]) + dl_du * d_beta
        out[:, :, 5] = -beta * t["tD"] / t["d_eff"] * t["dd_star"]
        out[:, :, 6] = dl_dn * t["dn_star"]
        return out

    def starts(self, prep: Prepared) -> np.ndarray:
        # Hoffmann et al.'s grid for the Chinchilla part (coarser), times a few decay constants.
        e = np.exp(np.arange(-1.0, 1.01, 1.0))
        ab = np.exp(np.arange(0.0, 25.1, 6.0))
        ex = np.array([0.2, 0.5, 1.0])
        stars = np.array([3.0, 30.0])
        return grid(e, ab, ab, ex, ex, stars, stars)

    def guess(self, prep: Prepared) -> np.ndarray:
        y = prep.y[prep.fit_mask]
        e = 0.8 * float(np.min(y))
        half = max(float(np.mean(y)) - e, 1e-3) / 2
        a = half * float(np.exp(0.3 * np.mean(np.log(prep.extra["N"]))))
        b = half * float(np.exp(0.3 * np.mean(np.log(prep.extra["D"]))))
        return np.array([e, a, b, 0.3, 0.3, 15.0, 5.0])

    def reducible_size(
        self, p: Mapping[str, float], reducible: np.ndarray, options: Mapping[str, Any]
    ) -> np.ndarray:
        """N with unlimited unique data (N' = N): ``N = (A / R)^(1/alpha)``."""
        return (p["A"] / reducible) ** (1.0 / p["alpha"])

    def epochs_loss(
        self, p: Mapping[str, float], params: np.ndarray, unique: np.ndarray, epochs: np.ndarray
    ) -> np.ndarray:
        """``loss_of_one_more_epoch`` / ``optimal_epochs``: the loss of N parameters trained
        for ``epochs`` passes over ``unique`` tokens (D = epochs x U)."""
        n, u, ep = np.broadcast_arrays(
            *(np.asarray(v, dtype=float) for v in (params, unique, epochs))
        )
        frame = pd.DataFrame({"params": n.ravel(), "tokens": (ep * u).ravel()})
        frame["unique_tokens"] = u.ravel()
        theta = np.array([[p[k] for k in NAMES]])
        return self.predict(theta, self.prepare(frame, for_fit=False))[0].reshape(n.shape)

    def example(self, rng: np.random.Generator) -> tuple[dict[str, float], pd.DataFrame]:
        # Muennighoff et al.'s fitted values; sizes reach well past N_opt(U_D) and up to
        # 60 epochs so both decay constants are seen.
        truth = {
            "E": 1.87,
            "A": 521.0,
            "B": 1488.0,
            "alpha": 0.353,
            "beta": 0.353,
            "R_D": 15.4,
            "R_N": 5.3,
        }
        rows = []
        for unique in (1e8, 1e9, 1e10):
            for n in np.geomspace(1e7, 3e9, 6):
                for epochs in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 60.0):
                    rows.append((n, epochs * unique, unique))
        frame = pd.DataFrame(rows, columns=["params", "tokens", "unique_tokens"])
        clean = self.predict(np.array([list(truth.values())]), self.prepare(frame, for_fit=False))
        frame["loss"] = clean[0] * np.exp(rng.normal(0.0, 0.002, len(frame)))
        return truth, frame
