"""Multilingual law (He et al. 2024), one parameter set per language family i:
L_i = (E_i + A_i / N^alpha_i + B_i / D^beta_i) * p_i^(-gamma_i)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fitting.errors import FitError
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

NAMES = ("E", "A", "B", "alpha", "beta", "gamma")


class Multilingual(Law):
    """Each family's loss depends on N, D and its own sampling ratio p_i only."""

    name: ClassVar[str] = "multilingual"
    formula: ClassVar[str] = "L_i = (E_i + A_i / N^alpha_i + B_i / D^beta_i) * p_i^(-gamma_i)"
    description: ClassVar[str] = (
        "He et al. 2024 multilingual law: a Chinchilla law per language family times "
        "p_i^-gamma_i for the family's sampling ratio p_i; parameters keyed '<family>.<name>'."
    )
    inputs: ClassVar[tuple[str, ...]] = ("params", "tokens", "family", "sampling_ratio")
    law_options: ClassVar[tuple[str, ...]] = ("families",)
    sizes: ClassVar[tuple[str, ...]] = ("params", "tokens")
    point_keys: ClassVar[tuple[str, ...]] = ("family",)  # a run has one point per family
    analyses: ClassVar[frozenset[str]] = frozenset({"optimal_sampling_ratios"})

    def resolve(self, data: pd.DataFrame, **options: Any) -> dict[str, Any]:
        out = dict(options)
        if out.get("families") is None:
            require_columns(data, self.inputs, self.name)
            fams = data["family"].dropna().astype(str).unique().tolist()
            if not fams:
                raise FitError("multilingual: the 'family' column is empty", column="family")
            out["families"] = sorted(fams)
        out["families"] = [str(f) for f in out["families"]]
        return out

    def parameters(self, data: pd.DataFrame | None = None, **options: Any) -> list[Parameter]:
        families = options.get("families")
        if families is None:
            if data is None:
                raise FitError("multilingual: parameters depend on the families in the data")
            families = self.resolve(data, **options)["families"]
        out = []
        for fam in families:
            out += [
                Parameter(f"{fam}.E", 1e-4, 50.0, log=True, doc=f"irreducible loss of {fam}"),
                Parameter(f"{fam}.A", 1e-8, 1e16, log=True),
                Parameter(f"{fam}.B", 1e-8, 1e16, log=True),
                Parameter(f"{fam}.alpha", 0.0, 5.0),
                Parameter(f"{fam}.beta", 0.0, 5.0),
                Parameter(f"{fam}.gamma", -2.0, 5.0, doc=f"sampling-ratio exponent of {fam}"),
            ]
        return out

    def prepare(self, data: pd.DataFrame, *, for_fit: bool = True, **options: Any) -> Prepared:
        require_columns(data, self.inputs, self.name)
        families = self.resolve(data, **options)["families"]
        index = {f: i for i, f in enumerate(families)}
        fam = data["family"].astype(str).to_numpy()
        unknown = sorted(set(fam) - set(index))
        if unknown:
            raise FitError(
                f"multilingual: unknown family {unknown[0]!r} (fitted: {', '.join(families)})",
                column="family",
            )
        n = positive_column(data, "params", self.name)
        d = positive_column(data, "tokens", self.name)
        p = positive_column(data, "sampling_ratio", self.name)
        if (p > 1).any():
            raise FitError(
                "multilingual: sampling_ratio must be in (0, 1]", column="sampling_ratio"
            )
        y, mask = loss_column(data, self.name, for_fit)
        extra = {
            "logN": np.log(n),
            "logD": np.log(d),
            "logp": np.log(p),
            "fam": np.array([index[f] for f in fam], dtype=int),
            "n_fam": len(families),
        }
        return Prepared(y, mask, group_ids(data), scale=6.0 * n * d, extra=extra)

    def _rows(self, theta: np.ndarray, prep: Prepared) -> list[np.ndarray]:
        theta = np.atleast_2d(theta).reshape(theta.shape[0] if theta.ndim == 2 else 1, -1, 6)
        per_row = theta[:, prep.extra["fam"], :]  # (K, M, 6)
        return [per_row[:, :, j] for j in range(6)]

    def predict(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        e, a, b, alpha, beta, gamma = self._rows(np.atleast_2d(theta), prep)
        base = e + a * np.exp(-alpha * prep.extra["logN"]) + b * np.exp(-beta * prep.extra["logD"])
        return base * np.exp(-gamma * prep.extra["logp"])

    def gradient(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        theta = np.atleast_2d(theta)
        e, a, b, alpha, beta, gamma = self._rows(theta, prep)
        log_n, log_d, log_p = prep.extra["logN"], prep.extra["logD"], prep.extra["logp"]
        tn, td = np.exp(-alpha * log_n), np.exp(-beta * log_d)
        pf = np.exp(-gamma * log_p)
        local = np.stack(
            [
                pf,
                tn * pf,
                td * pf,
                -a * log_n * tn * pf,
                -b * log_d * td * pf,
                -(e + a * tn + b * td) * pf * log_p,
            ],
            axis=-1,
        )  # (K, M, 6)
        out = np.zeros((theta.shape[0], prep.n_rows, theta.shape[1]))
        rows = np.arange(prep.n_rows)
        for j in range(6):
            out[:, rows, prep.extra["fam"] * 6 + j] = local[:, :, j]
        return out

    def blocks(self, prep: Prepared) -> list[tuple[np.ndarray, np.ndarray]]:
        """Families are independent: the engine may pick the best start per family."""
        return [
            (np.arange(6 * f, 6 * f + 6), prep.extra["fam"] == f)
            for f in range(prep.extra["n_fam"])
        ]

    def starts(self, prep: Prepared) -> np.ndarray:
        one = grid(
            np.exp([-1.0, 0.0, 1.0]),
            np.exp([0.0, 5.0, 10.0, 15.0, 20.0]),
            np.exp([0.0, 5.0, 10.0, 15.0, 20.0]),
            [0.2, 0.5, 1.0],
            [0.2, 0.5, 1.0],
            [0.0, 0.3],
        )
        return np.tile(one, (1, prep.extra["n_fam"]))

    def guess(self, prep: Prepared) -> np.ndarray:
        out = []
        for f in range(prep.extra["n_fam"]):
            sel = prep.fit_mask & (prep.extra["fam"] == f)
            y = prep.y[sel] if sel.any() else np.array([3.0])
            e = 0.8 * float(np.min(y))
            half = max(float(np.mean(y)) - e, 1e-3) / 2
            out += [
                e,
                half * float(np.exp(0.3 * np.mean(prep.extra["logN"]))),
                half * float(np.exp(0.3 * np.mean(prep.extra["logD"]))),
                0.3,
                0.3,
                0.1,
            ]
        return np.array(out)

    def sampling_terms(
        self,
        p: Mapping[str, float],
        families: list[str],
        params: float | None,
        tokens: float | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """gamma_i, and c_i = E_i + A_i / N^alpha_i + B_i / D^beta_i (1 without N, D)."""
        gamma = np.array([p[f"{f}.gamma"] for f in families])
        if params is None or tokens is None:
            return gamma, np.ones(len(families))
        scale = [
            p[f"{f}.E"]
            + p[f"{f}.A"] / params ** p[f"{f}.alpha"]
            + p[f"{f}.B"] / tokens ** p[f"{f}.beta"]
            for f in families
        ]
        return gamma, np.array(scale)

    def example(self, rng: np.random.Generator) -> tuple[dict[str, float], pd.DataFrame]:
        truth = {
            "en.E": 1.6,
            "en.A": 300.0,
            "en.B": 900.0,
            "en.alpha": 0.32,
            "en.beta": 0.3,
            "en.gamma": 0.12,
            "zh.E": 2.1,
            "zh.A": 500.0,
            "zh.B": 1500.0,
            "zh.alpha": 0.36,
            "zh.beta": 0.34,
            "zh.gamma": 0.2,
        }
        n, d, p = np.meshgrid(
            np.geomspace(1e7, 1e10, 5), np.geomspace(1e9, 1e12, 5), [0.1, 0.3, 0.6, 0.9]
        )
        frames = []
        for fam in ("en", "zh"):
            frames.append(
                pd.DataFrame(
                    {
                        "params": n.ravel(),
                        "tokens": d.ravel(),
                        "sampling_ratio": p.ravel(),
                        "family": fam,
                    }
                )
            )
        frame = pd.concat(frames, ignore_index=True)
        prep = self.prepare(frame, for_fit=False, families=["en", "zh"])
        clean = self.predict(np.array([list(truth.values())]), prep)[0]
        frame["loss"] = clean * np.exp(rng.normal(0.0, 0.002, len(frame)))
        return truth, frame
