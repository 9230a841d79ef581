"""Compute-optimal N and D for a FLOP budget (C = 6 N D), and the optimal encoder/decoder
split of a parameter budget.

Chinchilla's closed form (Hoffmann et al. 2022, Appendix D.2):
``G = (alpha A / (beta B))^(1/(alpha+beta))``, ``N_opt = G (C/6)^a``,
``D_opt = (C/6)^b / G`` with ``a = beta/(alpha+beta)``, ``b = alpha/(alpha+beta)``.
Kaplan's law has no closed form here, so N is found by a bounded 1-D search in log N.
NMT (Ghorbani et al. 2021): for ``Ne + Nd = N`` the loss is minimal at ``Ne/Nd = p_e/p_d``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fitting.analyses.common import interval, positive_array, require_law
from fitting.result import FitResult


def chinchilla_optimum(p: dict[str, float], flops: np.ndarray) -> tuple[np.ndarray, ...]:
    """(N_opt, D_opt) for each budget, from the closed form."""
    s = p["alpha"] + p["beta"]
    g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1.0 / s)
    n = g * (flops / 6.0) ** (p["beta"] / s)
    return n, flops / (6.0 * n)


def kaplan_optimum(p: dict[str, float], flops: np.ndarray) -> tuple[np.ndarray, ...]:
    """(N_opt, D_opt) by minimising Kaplan's L(N, C / 6N) over log N for each budget."""
    from scipy.optimize import minimize_scalar

    def loss(log_n: float, c: float) -> float:
        n, d = np.exp(log_n), c / (6.0 * np.exp(log_n))
        u = (p["N_c"] / n) ** (p["alpha_N"] / p["alpha_D"])
        return float(p["alpha_D"] * np.log(u + p["D_c"] / d))  # log L: same minimiser

    out = []
    for c in flops:
        hi = np.log(c / 6.0)
        res = minimize_scalar(
            loss, bounds=(0.0, hi), args=(c,), method="bounded", options={"xatol": 1e-10}
        )
        out.append(np.exp(res.x))
    n = np.array(out)
    return n, flops / (6.0 * n)


def compute_optimal(
    result: FitResult, flops: float | np.ndarray, level: float = 0.95
) -> dict[str, Any]:
    """N_opt, D_opt, tokens per parameter and the loss at the optimum for each budget C,
    each with an interval."""
    require_law(result, "chinchilla", "kaplan")
    c = positive_array(flops, "FLOP budget")
    solve = chinchilla_optimum if result.law == "chinchilla" else kaplan_optimum

    def loss_at(p: dict[str, float], n: np.ndarray, d: np.ndarray) -> np.ndarray:
        if result.law == "chinchilla":
            return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]
        u = (p["N_c"] / n) ** (p["alpha_N"] / p["alpha_D"])
        return (u + p["D_c"] / d) ** p["alpha_D"]

    def all_of(p: dict[str, float]) -> np.ndarray:
        n, d = solve(p, c)
        return np.concatenate([n, d, d / n, loss_at(p, n, d)])

    n, d = solve(result.params, c)
    lo, hi = interval(result, all_of, level)
    k = c.size
    out: dict[str, Any] = {"flops": c, "level": level}
    for i, (key, value) in enumerate(
        (
            ("N_opt", n),
            ("D_opt", d),
            ("tokens_per_param", d / n),
            ("loss", loss_at(result.params, n, d)),
        )
    ):
        out[key] = value
        out[f"{key}_lo"] = lo[i * k : (i + 1) * k]
        out[f"{key}_hi"] = hi[i * k : (i + 1) * k]
    return out


def optimal_encoder_decoder_split(
    result: FitResult, budget: float | np.ndarray, level: float = 0.95
) -> dict[str, Any]:
    """For a total parameter budget N = Ne + Nd: the loss-optimal Ne, Nd and the loss."""
    require_law(result, "nmt")
    n = positive_array(budget, "parameter budget")
    opts = result.law_options

    def split(p: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fe = p["p_e"] / (p["p_e"] + p["p_d"])
        ne, nd = n * fe, n * (1.0 - fe)
        loss = (
            p["alpha"] * (opts["Ne_ref"] / ne) ** p["p_e"] * (opts["Nd_ref"] / nd) ** p["p_d"]
            + p["L_inf"]
        )
        return ne, nd, loss

    ne, nd, loss = split(result.params)
    lo, hi = interval(result, lambda p: np.concatenate(split(p)), level)
    k = n.size
    return {
        "budget": n,
        "encoder_params": ne,
        "decoder_params": nd,
        "loss": loss,
        "encoder_fraction": ne / n,
        "encoder_params_lo": lo[:k],
        "encoder_params_hi": hi[:k],
        "loss_lo": lo[2 * k :],
        "loss_hi": hi[2 * k :],
        "level": level,
    }
