"""KL decomposition: loss = S(true) + D_KL(true || model) (Henighan et al. 2020).

The fitted irreducible term (``L_inf``, ``E`` or ``L0``) estimates the entropy of the data
S(true); the rest of the predicted loss is the reducible part, the KL divergence. Also the
model size that reaches a target reducible loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fitting.analyses.common import interval, positive_array, require_law
from fitting.errors import FitError
from fitting.result import FitResult

# The parameter that estimates the data's entropy, per law.
IRREDUCIBLE = {
    "power_law": "L_inf",
    "chinchilla": "E",
    "nmt": "L_inf",
    "lr_annealing": "L0",
    "multi_power": "L0",
}


def kl_decomposition(
    result: FitResult, data: pd.DataFrame | dict[str, Any] | None = None, level: float = 0.95
) -> dict[str, Any]:
    """Irreducible loss with its interval; with ``data``, the predicted loss per row split
    into irreducible + reducible (the KL divergence), each reducible value with a band."""
    name = IRREDUCIBLE.get(result.law)
    if name is None:
        raise FitError(
            f"law {result.law!r} has no irreducible-loss term to decompose; "
            f"use one of {', '.join(IRREDUCIBLE)}"
        )
    irreducible = result.params[name]
    lo, hi = result.intervals.get(name, [irreducible, irreducible])
    out: dict[str, Any] = {
        "parameter": name,
        "irreducible": irreducible,
        "irreducible_interval": [float(lo), float(hi)],
        "level": level,
    }
    if data is None:
        return out
    from fitting.result import _frame

    law, prep = result._prepared(_frame(data))
    names = list(result.params)
    total = law.predict(result.theta()[None, :], prep)[0]
    reducible = total - irreducible

    def red(params: dict[str, float]) -> np.ndarray:
        theta = np.array([[params[n] for n in names]])
        return law.predict(theta, prep)[0] - params[name]

    r_lo, r_hi = interval(result, red, level)
    out.update(
        loss=total,
        reducible=reducible,
        reducible_lo=r_lo,
        reducible_hi=r_hi,
        reducible_fraction=reducible / total,
    )
    return out


def size_for_reducible_loss(
    result: FitResult, target: float | np.ndarray, level: float = 0.95
) -> dict[str, Any]:
    """Model size whose reducible loss is ``target``.

    power_law: ``x = x0 * R^(-1/alpha)``; chinchilla (infinite data): ``N = (A/R)^(1/alpha)``;
    nmt (optimal split): ``N = (alpha Ne_ref^p_e Nd_ref^p_d f_e^-p_e f_d^-p_d / R)^(1/(p_e+p_d))``
    with ``f_e = p_e/(p_e+p_d)``."""
    require_law(result, "power_law", "chinchilla", "nmt")
    r = positive_array(target, "target reducible loss")
    opts = result.law_options

    def size(p: dict[str, float]) -> np.ndarray:
        if result.law == "power_law":
            return p["x0"] * r ** (-1.0 / p["alpha"])
        if result.law == "chinchilla":
            return (p["A"] / r) ** (1.0 / p["alpha"])
        total = p["p_e"] + p["p_d"]
        fe, fd = p["p_e"] / total, p["p_d"] / total
        coef = p["alpha"] * opts["Ne_ref"] ** p["p_e"] * opts["Nd_ref"] ** p["p_d"]
        return (coef * fe ** -p["p_e"] * fd ** -p["p_d"] / r) ** (1.0 / total)

    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        value = size(result.params)
        lo, hi = interval(result, size, level)
    variable = opts.get("x", "params") if result.law == "power_law" else "params"
    return {"target": r, "size": value, "lo": lo, "hi": hi, "variable": variable, "level": level}
