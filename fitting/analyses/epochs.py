"""Repeated data (Muennighoff et al. 2023): what one more epoch buys, and how many epochs
spend a FLOP budget best when the unique tokens are limited.

Both ask the law's ``epochs_loss(p, params, unique, epochs)`` hook (a law that lists
``loss_of_one_more_epoch`` / ``optimal_epochs`` in its ``analyses``); intervals come from
the fit (bootstrap percentiles, else the delta method on the curvature).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fitting.analyses.common import interval, law_for, positive_array
from fitting.errors import FitError
from fitting.result import FitResult

GRID = 241  # log-N grid of the optimum search before the 1-D polish
MIN_TOKENS = 1e3  # the search keeps D and N at least this large


def loss_of_one_more_epoch(
    result: FitResult,
    params: float | np.ndarray,
    unique_tokens: float | np.ndarray,
    epochs: float | np.ndarray,
    level: float = 0.95,
) -> dict[str, Any]:
    """The loss after ``epochs`` passes over ``unique_tokens`` and after one more, and the
    gain (positive: the extra epoch lowers the loss), each with an interval."""
    law = law_for(result, "loss_of_one_more_epoch")
    n, u, ep = np.broadcast_arrays(
        positive_array(params, "params"),
        positive_array(unique_tokens, "unique tokens"),
        positive_array(epochs, "epochs"),
    )

    def quantities(p: dict[str, float]) -> np.ndarray:
        now = law.epochs_loss(p, n, u, ep)
        more = law.epochs_loss(p, n, u, ep + 1.0)
        return np.concatenate([now, more, now - more])

    values = quantities(result.params)
    lo, hi = interval(result, quantities, level)
    k = n.size
    out: dict[str, Any] = {"params": n, "unique_tokens": u, "epochs": ep, "level": level}
    for i, key in enumerate(("loss", "loss_next_epoch", "gain")):
        part = slice(i * k, (i + 1) * k)
        out[key], out[f"{key}_lo"], out[f"{key}_hi"] = values[part], lo[part], hi[part]
    return out


def optimal_epochs(
    result: FitResult,
    flops: float | np.ndarray,
    unique_tokens: float | np.ndarray,
    level: float = 0.95,
) -> dict[str, Any]:
    """For a FLOP budget C (C = 6 N D) and U unique tokens: the N and D = C / 6N (so
    ``epochs = D / U``) with the lowest loss, each with an interval."""
    law = law_for(result, "optimal_epochs")
    c, u = np.broadcast_arrays(
        positive_array(flops, "FLOP budget"), positive_array(unique_tokens, "unique tokens")
    )
    if (c / 6.0 < MIN_TOKENS**2).any():
        raise FitError(f"FLOP budget too small: C / 6 must exceed {MIN_TOKENS**2:g}")

    def solve(p: dict[str, float]) -> np.ndarray:
        n = np.array([_best_size(law, p, ci, ui) for ci, ui in zip(c, u, strict=True)])
        d = c / (6.0 * n)
        loss = law.epochs_loss(p, n, u, d / u)
        return np.concatenate([n, d, d / u, loss])

    values = solve(result.params)
    lo, hi = interval(result, solve, level)
    k = c.size
    out: dict[str, Any] = {"flops": c, "unique_tokens": u, "level": level}
    for i, key in enumerate(("N_opt", "D_opt", "epochs", "loss")):
        part = slice(i * k, (i + 1) * k)
        out[key], out[f"{key}_lo"], out[f"{key}_hi"] = values[part], lo[part], hi[part]
    return out


def _best_size(law: Any, p: dict[str, float], c: float, u: float) -> float:
    """argmin over N of the loss at D = C / 6N: a log grid, then a bounded polish."""
    from scipy.optimize import minimize_scalar

    lo, hi = np.log(MIN_TOKENS), np.log(c / 6.0 / MIN_TOKENS)
    grid = np.linspace(lo, hi, GRID)

    def loss(log_n: np.ndarray | float) -> np.ndarray:
        n = np.exp(np.atleast_1d(log_n))
        return law.epochs_loss(p, n, np.full(n.shape, u), c / (6.0 * n) / u)

    i = int(np.argmin(loss(grid)))
    left, right = grid[max(i - 1, 0)], grid[min(i + 1, GRID - 1)]
    found = minimize_scalar(
        lambda x: float(loss(x)[0]),
        bounds=(left, right),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return float(np.exp(found.x))
