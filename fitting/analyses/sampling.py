"""Optimal multilingual sampling ratios (He et al. 2024).

Minimise ``sum_i w_i L_i(p_i)`` subject to ``sum_i p_i = 1`` with
``L_i = c_i p_i^-gamma_i``. By default each loss is normalised by its value at p_i = 1
(c_i = 1), so the optimum depends only on the gamma_i and carries over across model
sizes; given N and D, c_i = E_i + A_i / N^alpha_i + B_i / D^beta_i. The Lagrange condition
``w_i c_i gamma_i p_i^-(gamma_i+1) = mu`` gives ``p_i(mu) = (w_i c_i gamma_i / mu)^(1/(gamma_i+1))``;
mu is found by a 1-D root search on ``sum_i p_i(mu) = 1``. Families with gamma_i <= 0 gain
nothing from more data and get p_i = 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fitting.analyses.common import interval, law_for
from fitting.errors import FitError
from fitting.result import FitResult


def _ratios(gamma: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Solve sum_i (k_i gamma_i / mu)^(1/(gamma_i+1)) = 1 for mu; return the ratios."""
    from scipy.optimize import brentq

    active = gamma > 0
    if not active.any():
        raise FitError("no family's loss improves with its sampling ratio (every gamma <= 0)")
    g, kk = gamma[active], k[active]

    def excess(log_mu: float) -> float:
        return float(np.sum(np.exp((np.log(kk * g) - log_mu) / (g + 1.0)))) - 1.0

    lo, hi = -50.0, 50.0
    while excess(lo) < 0:
        lo -= 50.0
    while excess(hi) > 0:
        hi += 50.0
    log_mu = brentq(excess, lo, hi, xtol=1e-14, rtol=1e-14)
    out = np.zeros_like(gamma)
    out[active] = np.exp((np.log(kk * g) - log_mu) / (g + 1.0))
    return out / out.sum()


def optimal_sampling_ratios(
    result: FitResult,
    weights: dict[str, float] | None = None,
    *,
    params: float | None = None,
    tokens: float | None = None,
    level: float = 0.95,
) -> dict[str, Any]:
    """Ratios p_i (summing to 1) minimising the weighted sum of the families' losses."""
    law = law_for(result, "optimal_sampling_ratios")
    families = list(result.law_options["families"])
    weights = weights or {f: 1.0 for f in families}
    unknown = sorted(set(weights) - set(families))
    if unknown:
        raise FitError(f"unknown family {unknown[0]!r}; fitted families: {', '.join(families)}")
    w = np.array([float(weights.get(f, 0.0)) for f in families])
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise FitError("weights must be non-negative numbers, not all zero")
    if (params is None) != (tokens is None):
        raise FitError("give both params and tokens (or neither, for normalised losses)")

    def solve(p: dict[str, float]) -> np.ndarray:
        gamma, c = law.sampling_terms(p, families, params, tokens)
        ratios = np.zeros(len(families))
        used = w > 0
        ratios[used] = _ratios(gamma[used], (w * c)[used])
        return ratios

    ratios = solve(result.params)
    lo, hi = interval(result, solve, level)
    return {
        "ratios": dict(zip(families, ratios.tolist(), strict=True)),
        "intervals": {f: [float(a), float(b)] for f, a, b in zip(families, lo, hi, strict=True)},
        "weights": dict(zip(families, w.tolist(), strict=True)),
        "level": level,
    }
