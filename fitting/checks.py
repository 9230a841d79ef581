"""Model checking: information criteria and the extrapolation test.

AIC and BIC use the Gaussian likelihood of the residuals (``n log(RSS / n) + 2k`` and
``+ k log n``): Huber has no likelihood of its own, and this keeps laws comparable on
the same data. The extrapolation test refits with the rows at the largest scale held out
(weight zero, so curve laws keep their cumulative features) and reports the error of the
prediction there: the honest measure of what a scaling law is for.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fitting.errors import FitError
from fitting.objective import Problem


def information_criteria(residuals: np.ndarray, k: int) -> tuple[float, float]:
    """(AIC, BIC) from the Gaussian likelihood of the residuals, k free parameters."""
    n = residuals.size
    rss = max(float(residuals @ residuals), 1e-300)
    base = n * math.log(rss / n)
    return base + 2 * k, base + k * math.log(n)


def holdout_mask(problem: Problem, factor: float) -> np.ndarray:
    """Fit rows (bool over the fit rows) whose scale is within `factor` of the largest."""
    if not factor >= 1:
        raise FitError(f"holdout_factor must be at least 1, not {factor!r}")
    scale = np.asarray(problem.prep.scale, dtype=float)[problem.rows]
    return scale >= np.nanmax(scale) / factor


def extrapolation_test(
    problem: Problem, *, holdout_factor: float = 1.5, n_polish: int = 2
) -> dict[str, Any]:
    """Refit without the largest-scale rows and score the prediction on them."""
    from fitting.engine import start_grid
    from fitting.optimize import multistart

    held = holdout_mask(problem, holdout_factor)
    n_train = int((~held).sum())
    if n_train < problem.n_free + 1:
        raise FitError(
            f"extrapolation test: only {n_train} point(s) below the largest scale "
            f"for {problem.n_free} free parameter(s)"
        )
    w = (~held).astype(float)
    best = multistart(problem, start_grid(problem), w, n_polish=n_polish)
    theta = problem.theta(best.z)
    pred = problem.law.predict(theta, problem.prep)[0][problem.rows][held]
    obs = problem.prep.y[problem.rows][held]
    rel = np.abs(pred - obs) / np.abs(obs)
    scale = np.asarray(problem.prep.scale, dtype=float)[problem.rows]
    return {
        "holdout_factor": float(holdout_factor),
        "scale_threshold": float(np.nanmax(scale) / holdout_factor),
        "n_train": n_train,
        "n_heldout": int(held.sum()),
        "mean_abs_error": float(np.mean(np.abs(pred - obs))),
        "rmse": float(np.sqrt(np.mean((pred - obs) ** 2))),
        "mean_rel_error": float(np.mean(rel)),
        "max_rel_error": float(np.max(rel)),
        "params": {n: float(v) for n, v in zip(problem.names, theta[0], strict=True)},
    }
