"""KL decomposition: loss = S(true) + D_KL(true || model) (Henighan et al. 2020).

The fitted irreducible term (the law's ``irreducible`` parameter: ``L_inf``, ``E`` or
``L0``) estimates the entropy of the data S(true); the rest of the predicted loss is the
reducible part, the KL divergence. Also the model size that reaches a target reducible loss
(the law's ``reducible_size``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fitting.analyses.common import interval, law_for, method_text, positive_array
from fitting.errors import FitError
from fitting.laws import LAWS, laws_supporting
from fitting.result import FitResult


def kl_decomposition(
    result: FitResult, data: pd.DataFrame | dict[str, Any] | None = None, level: float = 0.95
) -> dict[str, Any]:
    """Irreducible loss with its interval; with ``data``, the predicted loss per row split
    into irreducible + reducible (the KL divergence), each reducible value with a band."""
    law = LAWS.get(result.law)
    name = law.irreducible if law is not None else None
    if name is None:
        raise FitError(
            f"law {result.law!r} has no irreducible-loss term to decompose; "
            f"use one of {', '.join(laws_supporting('kl_decomposition'))}"
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
    """Model size whose reducible loss is ``target`` (``variable``: the fit's ``x`` column
    for a law with an x option, else params), from the law's ``reducible_size``."""
    law = law_for(result, "size_for_reducible_loss")
    r = positive_array(target, "target reducible loss")
    opts = result.law_options

    def size(p: dict[str, float]) -> np.ndarray:
        return law.reducible_size(p, r, opts)

    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        value = size(result.params)
        lo, hi = interval(result, size, level)
    variable = str(opts.get("x", "params"))
    return {
        "target": r,
        "size": value,
        "lo": lo,
        "hi": hi,
        "variable": variable,
        "level": level,
        "interval_method": method_text(result),
    }
