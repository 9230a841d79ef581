"""Compute-optimal N and D for a FLOP budget (C = 6 N D), and the optimal encoder/decoder
split of a parameter budget.

The optimum itself is the law's (``Law.compute_optimum``: Chinchilla's closed form,
Kaplan's 1-D search; ``Law.optimal_split``: NMT's Ne/Nd = p_e/p_d); here it gets its
intervals and its shape as an answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fitting.analyses.common import interval, law_for, positive_array
from fitting.result import FitResult


def compute_optimal(
    result: FitResult, flops: float | np.ndarray, level: float = 0.95
) -> dict[str, Any]:
    """N_opt, D_opt, tokens per parameter and the loss at the optimum for each budget C,
    each with an interval."""
    law = law_for(result, "compute_optimal")
    c = positive_array(flops, "FLOP budget")

    def all_of(p: dict[str, float]) -> np.ndarray:
        n, d, loss = law.compute_optimum(p, c)
        return np.concatenate([n, d, d / n, loss])

    n, d, loss = law.compute_optimum(result.params, c)
    lo, hi = interval(result, all_of, level)
    k = c.size
    out: dict[str, Any] = {"flops": c, "level": level}
    for i, (key, value) in enumerate(
        (("N_opt", n), ("D_opt", d), ("tokens_per_param", d / n), ("loss", loss))
    ):
        out[key] = value
        out[f"{key}_lo"] = lo[i * k : (i + 1) * k]
        out[f"{key}_hi"] = hi[i * k : (i + 1) * k]
    return out


def optimal_encoder_decoder_split(
    result: FitResult, budget: float | np.ndarray, level: float = 0.95
) -> dict[str, Any]:
    """For a total parameter budget N = Ne + Nd: the loss-optimal Ne, Nd and the loss."""
    law = law_for(result, "optimal_encoder_decoder_split")
    n = positive_array(budget, "parameter budget")
    opts = result.law_options

    ne, nd, loss = law.optimal_split(result.params, n, opts)
    lo, hi = interval(result, lambda p: np.concatenate(law.optimal_split(p, n, opts)), level)
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
