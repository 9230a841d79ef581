"""Compute-optimal N and D for a FLOP budget (C = 6 N D), and the optimal encoder/decoder
split of a parameter budget.

The optimum itself is the law's (``Law.compute_optimum``: Chinchilla's closed form,
Kaplan's 1-D search; ``Law.optimal_split``: NMT's Ne/Nd = p_e/p_d); here it gets its
intervals and its shape as an answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fitting.analyses.common import interval, law_for, method_text, positive_array
from fitting.errors import FitError
from fitting.result import FitResult


def compute_optimal(
    result: FitResult, flops: float | np.ndarray, level: float = 0.95
) -> dict[str, Any]:
    """N_opt, D_opt, tokens per parameter, the loss at the optimum and the allocation
    exponents a = d log N_opt / d log C, b = 1 - a (Chinchilla: beta/(alpha+beta) and
    alpha/(alpha+beta)) for each budget C, each with an interval; ``flags`` names the
    budgets and sizes beyond the fitted data (`FitResult.beyond_data`)."""
    law = law_for(result, "compute_optimal")
    c = positive_array(flops, "FLOP budget")
    step = np.exp(0.5)  # the local exponent from N_opt at C / sqrt(e) and C * sqrt(e)

    def all_of(p: dict[str, float]) -> np.ndarray:
        n, d, loss = law.compute_optimum(p, c)
        n_up, _, _ = law.compute_optimum(p, c * step)
        n_down, _, _ = law.compute_optimum(p, c / step)
        a = np.log(n_up / n_down)  # over a span of one e-fold of C
        return np.concatenate([n, d, d / n, loss, a, 1.0 - a])

    values = all_of(result.params)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        lo, hi = interval(result, all_of, level)
    k = c.size
    out: dict[str, Any] = {"flops": c, "level": level}
    for i, key in enumerate(("N_opt", "D_opt", "tokens_per_param", "loss", "a", "b")):
        out[key] = values[i * k : (i + 1) * k]
        out[f"{key}_lo"] = lo[i * k : (i + 1) * k]
        out[f"{key}_hi"] = hi[i * k : (i + 1) * k]
    out["interval_method"] = method_text(result)
    asked = {"flops": c, "params": out["N_opt"], "tokens": out["D_opt"]}
    from fitting.result import beyond

    out["flags"] = {"beyond_data": beyond(result.data_range, asked)}
    return out


def optimal_encoder_decoder_split(
    result: FitResult, budget: float | np.ndarray, level: float = 0.95
) -> dict[str, Any]:
    """For a total parameter budget N = Ne + Nd: the loss-optimal Ne, Nd and the loss."""
    law = law_for(result, "optimal_encoder_decoder_split")
    n = positive_array(budget, "parameter budget")
    opts = result.law_options

    def all_of(p: dict[str, float]) -> np.ndarray:
        e, d, loss = law.optimal_split(p, n, opts)
        return np.concatenate([e, d, loss, e / n])

    ne, nd, loss = law.optimal_split(result.params, n, opts)
    lo, hi = interval(result, all_of, level)
    k = n.size
    out: dict[str, Any] = {
        "budget": n,
        "encoder_params": ne,
        "decoder_params": nd,
        "loss": loss,
        "encoder_fraction": ne / n,
    }
    for i, key in enumerate(("encoder_params", "decoder_params", "loss", "encoder_fraction")):
        out[f"{key}_lo"], out[f"{key}_hi"] = lo[i * k : (i + 1) * k], hi[i * k : (i + 1) * k]
    return {**out, "level": level, "interval_method": method_text(result)}


def compute_optimal_exponents(
    result: FitResult,
    flops: float | np.ndarray,
    level: float = 0.95,
    flops_per_token: Any = None,
) -> dict[str, Any]:
    """Approach 3 in the allocation report's shape: a (N_opt ∝ C^a) and b (D_opt ∝ C^b),
    and N_opt, D_opt, tokens per parameter at each budget, each with an interval.

    a and b are the local slopes d log N_opt / d log C (d log D_opt / d log C) at the
    geometric mean of the budgets (constant for Chinchilla-form laws). With
    ``flops_per_token`` (a function of N; a FLOP count other than C = 6ND) the optimum is
    searched numerically along D = C / flops_per_token(N) on the law's own prediction,
    which needs a law whose sizes are params and tokens."""
    law = law_for(result, "compute_optimal")
    c = positive_array(flops, "FLOP budget")
    if flops_per_token is not None and set(law.sizes) != {"params", "tokens"}:
        raise FitError(
            f"law {result.law!r} takes sizes {', '.join(law.sizes)}: its optimum under a "
            "FLOP count other than 6ND is not defined here"
        )
    ref = float(np.exp(np.mean(np.log(c))))
    at = np.concatenate([c, [ref / np.e, ref * np.e]])
    names = list(result.params)

    def optimum(p: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        if flops_per_token is None:
            n, d, _ = law.compute_optimum(p, at)
            return n, d
        theta = np.array([[p[k] for k in names]])
        n = np.array([_search(law, theta, ci, flops_per_token, result) for ci in at])
        return n, at / flops_per_token(n)

    def all_of(p: dict[str, float]) -> np.ndarray:
        n, d = optimum(p)
        k = c.size
        a = (np.log(n[k + 1]) - np.log(n[k])) / 2.0
        b = (np.log(d[k + 1]) - np.log(d[k])) / 2.0
        return np.concatenate([[a, b], n[:k], d[:k], d[:k] / n[:k]])

    values = all_of(result.params)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        lo, hi = interval(result, all_of, level)
    k = c.size
    rows = []
    for i in range(k):
        j = [2 + i, 2 + k + i, 2 + 2 * k + i]
        rows.append(
            {
                "flops": float(c[i]),
                "N_opt": float(values[j[0]]),
                "N_opt_interval": [float(lo[j[0]]), float(hi[j[0]])],
                "D_opt": float(values[j[1]]),
                "D_opt_interval": [float(lo[j[1]]), float(hi[j[1]])],
                "tokens_per_param": float(values[j[2]]),
                "tokens_per_param_interval": [float(lo[j[2]]), float(hi[j[2]])],
            }
        )
    how = (
        "bootstrap percentiles of the fit's refits"
        if result.bootstrap_samples
        else ("delta method on the fit's curvature")
    )
    return {
        "a": float(values[0]),
        "a_interval": [float(lo[0]), float(hi[0])],
        "b": float(values[1]),
        "b_interval": [float(lo[1]), float(hi[1])],
        "slopes_at": ref,
        "at_budgets": rows,
        "interval_method": how,
        "level": level,
    }


def _search(law: Any, theta: np.ndarray, c: float, fpt: Any, result: FitResult) -> float:
    """argmin over N of the law's loss at (N, C / fpt(N)): a log grid, then a polish."""
    import pandas as pd
    from scipy.optimize import minimize_scalar

    opts = result.law_options

    def loss(log_n: np.ndarray) -> np.ndarray:
        n = np.exp(np.atleast_1d(log_n))
        frame = pd.DataFrame({"params": n, "tokens": c / fpt(n)})
        return law.predict(theta, law.prepare(frame, for_fit=False, **opts))[0]

    grid = np.linspace(np.log(1e3), np.log(c / 6e3), 241)
    i = int(np.argmin(loss(grid)))
    found = minimize_scalar(
        lambda x: float(loss(np.array([x]))[0]),
        bounds=(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return float(np.exp(found.x))
