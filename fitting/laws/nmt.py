"""NMT encoder/decoder law (Ghorbani et al. 2021):
L = alpha * (Ne_ref / Ne)^p_e * (Nd_ref / Nd)^p_d + L_inf."""

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


class Nmt(Law):
    """Encoder and decoder sizes with their own exponents; reference sizes are fixed."""

    name: ClassVar[str] = "nmt"
    formula: ClassVar[str] = "L = alpha * (Ne_ref / Ne)^p_e * (Nd_ref / Nd)^p_d + L_inf"
    description: ClassVar[str] = (
        "Ghorbani et al. 2021 encoder/decoder scaling for translation; Ne_ref and Nd_ref "
        "are fixed (geometric means of the data unless given) and reported in the options."
    )
    inputs: ClassVar[tuple[str, ...]] = ("encoder_params", "decoder_params")
    law_options: ClassVar[tuple[str, ...]] = ("Ne_ref", "Nd_ref")
    irreducible: ClassVar[str | None] = "L_inf"
    sizes: ClassVar[tuple[str, ...]] = ("encoder_params", "decoder_params")
    analyses: ClassVar[frozenset[str]] = frozenset(
        {"kl_decomposition", "size_for_reducible_loss", "optimal_encoder_decoder_split"}
    )

    def resolve(self, data: pd.DataFrame, **options: Any) -> dict[str, Any]:
        out = dict(options)
        for key, col in (("Ne_ref", "encoder_params"), ("Nd_ref", "decoder_params")):
            if out.get(key) is None:
                require_columns(data, self.inputs, self.name)
                values = positive_column(data, col, self.name)
                out[key] = float(np.exp(np.mean(np.log(values))))
            elif not float(out[key]) > 0:
                raise FitError(f"nmt: {key} must be positive, got {out[key]!r}")
        return out

    def parameters(self, data: pd.DataFrame | None = None, **options: Any) -> list[Parameter]:
        return [
            Parameter("alpha", 1e-8, 1e8, log=True, doc="reducible loss at the reference sizes"),
            Parameter("p_e", 0.0, 5.0, doc="encoder exponent"),
            Parameter("p_d", 0.0, 5.0, doc="decoder exponent"),
            Parameter("L_inf", 0.0, 100.0, doc="irreducible loss"),
        ]

    def prepare(self, data: pd.DataFrame, *, for_fit: bool = True, **options: Any) -> Prepared:
        require_columns(data, self.inputs, self.name)
        refs = self.resolve(data, **options)
        ne = positive_column(data, "encoder_params", self.name)
        nd = positive_column(data, "decoder_params", self.name)
        y, mask = loss_column(data, self.name, for_fit)
        extra = {
            "log_e": np.log(refs["Ne_ref"]) - np.log(ne),
            "log_d": np.log(refs["Nd_ref"]) - np.log(nd),
        }
        return Prepared(y, mask, group_ids(data), scale=ne + nd, extra=extra)

    def predict(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        alpha, p_e, p_d, l_inf = (np.atleast_2d(theta)[:, j, None] for j in range(4))
        return alpha * np.exp(p_e * prep.extra["log_e"] + p_d * prep.extra["log_d"]) + l_inf

    def gradient(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        theta = np.atleast_2d(theta)
        alpha, p_e, p_d = (theta[:, j, None] for j in range(3))
        term = np.exp(p_e * prep.extra["log_e"] + p_d * prep.extra["log_d"])
        out = np.empty((theta.shape[0], prep.n_rows, 4))
        out[:, :, 0] = term
        out[:, :, 1] = alpha * term * prep.extra["log_e"]
        out[:, :, 2] = alpha * term * prep.extra["log_d"]
        out[:, :, 3] = 1.0
        return out

    def starts(self, prep: Prepared) -> np.ndarray:
        y = prep.y[prep.fit_mask]
        rows = []
        for frac in (0.0, 0.3, 0.6, 0.8, 0.9, 0.95):
            l_inf = frac * float(np.min(y))
            alpha = max(float(np.median(y)) - l_inf, 1e-4)
            rows.append(
                grid([alpha], [0.05, 0.1, 0.2, 0.4, 0.8], [0.05, 0.1, 0.2, 0.4, 0.8], [l_inf])
            )
        return np.vstack(rows)

    def guess(self, prep: Prepared) -> np.ndarray:
        y = prep.y[prep.fit_mask]
        l_inf = 0.8 * float(np.min(y))
        return np.array([max(float(np.median(y)) - l_inf, 1e-4), 0.2, 0.2, l_inf])

    def optimal_split(
        self, p: Mapping[str, float], budget: np.ndarray, options: Mapping[str, Any]
    ) -> tuple[np.ndarray, ...]:
        """For Ne + Nd = N the loss is minimal at Ne / Nd = p_e / p_d."""
        fe = p["p_e"] / (p["p_e"] + p["p_d"])
        ne, nd = budget * fe, budget * (1.0 - fe)
        reducible = (options["Ne_ref"] / ne) ** p["p_e"] * (options["Nd_ref"] / nd) ** p["p_d"]
        return ne, nd, p["alpha"] * reducible + p["L_inf"]

    def reducible_size(
        self, p: Mapping[str, float], reducible: np.ndarray, options: Mapping[str, Any]
    ) -> np.ndarray:
        """Total N at the optimal split:
        ``N = (alpha Ne_ref^p_e Nd_ref^p_d f_e^-p_e f_d^-p_d / R)^(1/(p_e+p_d))``,
        ``f_e = p_e/(p_e+p_d)``."""
        total = p["p_e"] + p["p_d"]
        fe, fd = p["p_e"] / total, p["p_d"] / total
        coef = p["alpha"] * options["Ne_ref"] ** p["p_e"] * options["Nd_ref"] ** p["p_d"]
        return (coef * fe ** -p["p_e"] * fd ** -p["p_d"] / reducible) ** (1.0 / total)

    def example(self, rng: np.random.Generator) -> tuple[dict[str, float], pd.DataFrame]:
        truth = {"alpha": 0.8, "p_e": 0.25, "p_d": 0.45, "L_inf": 1.5}
        ne, nd = np.meshgrid(np.geomspace(1e7, 1e9, 6), np.geomspace(1e7, 1e9, 6))
        frame = pd.DataFrame({"encoder_params": ne.ravel(), "decoder_params": nd.ravel()})
        opts = self.resolve(frame)
        clean = self.predict(
            np.array([list(truth.values())]), self.prepare(frame, for_fit=False, **opts)
        )
        frame["loss"] = clean[0] * np.exp(rng.normal(0.0, 0.002, len(frame)))
        return truth, frame
