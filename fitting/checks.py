"""Model checking: information criteria, the doubts about a fit, the extrapolation test.

AIC and BIC use the Gaussian likelihood of the residuals (``n log(RSS / n) + 2k`` and
``+ k log n``): Huber has no likelihood of its own, and this keeps laws comparable on
the same data. The extrapolation test refits with the rows at the largest scale held out
(weight zero, so curve laws keep their cumulative features) and reports the error of the
prediction there: the honest measure of what a scaling law is for.

Degenerate data: `refuse_flat_design` refuses a fit whose points all sit at one size (the
law then predicts one loss for every point); `diagnose` lists what a finished fit cannot
vouch for (parameters at a bound, undetermined parameters, a loss that rises with size,
size inputs with a single value), and `FitResult.converged` is false when the optimum is
on a bound or not determined.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pandas as pd

from fitting.errors import FitError
from fitting.laws.base import Law
from fitting.objective import Problem
from fitting.optimize import multistart
from fitting.starts import start_grid

# A free parameter this close to a bound, relative to the bound's size (in optimiser space,
# where both optimisers stop exactly on the bound they push against), is "at the bound".
BOUND_TOLERANCE = 1e-6
# A log-scale parameter within this share of its span (in log) of a bound is "at the bound"
# too: E = 1.1e-4 against a bound of 1e-4 is the optimiser pushing against it.
LOG_BOUND_SHARE = 0.01
# Two size inputs whose logs correlate this closely are scaled together by the design.
CONFOUNDED_CORRELATION = 0.999


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


def holdout_refit(
    problem: Problem, *, holdout_factor: float = 1.5, n_polish: int = 2
) -> dict[str, Any]:
    """Refit without the largest-scale rows and score the prediction on them."""
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


def _size_values(problem: Problem, data: pd.DataFrame, law_opts: dict[str, Any]) -> dict:
    """Each size input of the law (``Law.size_inputs``) present in ``data``, as floats on
    the fit rows (``Prepared`` keeps one row per data row)."""
    rows = problem.prep.fit_mask if len(data) == problem.prep.n_rows else slice(None)
    out = {}
    for column in problem.law.size_inputs(law_opts):
        if column in data.columns:
            values = pd.to_numeric(data[column], errors="coerce").to_numpy(dtype=float)[rows]
            out[column] = values[np.isfinite(values)]
    return out


def _single_value(values: np.ndarray) -> bool:
    return values.size > 0 and float(np.ptp(values)) <= 1e-9 * float(np.abs(values).max())


def refuse_flat_design(problem: Problem, data: pd.DataFrame, law_opts: dict[str, Any]) -> None:
    """FitError when every fit point has the same size inputs (one N for a law of N, one
    (N, D) for a law of N and D): no parameter of the law's size terms can be fitted."""
    sizes = _size_values(problem, data, law_opts)
    if not sizes or not all(_single_value(v) for v in sizes.values()):
        return
    where = " and ".join(f"{c}={v[0]:.6g}" for c, v in sizes.items())
    raise FitError(
        f"law {problem.law.name!r}: every point has {where}, so the law predicts the same "
        f"loss for all {problem.n_points} of them and cannot be fitted; the data need "
        f"points at two or more values of {' or '.join(sizes)}"
    )


def at_bounds(problem: Problem, z: np.ndarray) -> dict[str, str]:
    """Free parameters on (or within BOUND_TOLERANCE of) a bound: name -> lower/upper."""
    out = {}
    for j, name in enumerate(problem.free_names):
        lo, hi = problem.lo[j], problem.hi[j]
        near = LOG_BOUND_SHARE * (hi - lo) if problem.log[j] else 0.0
        if z[j] <= lo + max(near, BOUND_TOLERANCE * max(1.0, abs(lo))):
            out[name] = "lower"
        elif z[j] >= hi - max(near, BOUND_TOLERANCE * max(1.0, abs(hi))):
            out[name] = "upper"
    return out


def confounded_inputs(
    problem: Problem, data: pd.DataFrame, law_opts: dict[str, Any]
) -> list[dict[str, Any]]:
    """Pairs of size inputs the design always scales together (one tokens-per-parameter
    ratio; encoder and decoder grown in step): their logs correlate past
    CONFOUNDED_CORRELATION, so the law's terms in each trade off."""
    sizes = {
        c: v
        for c, v in _size_values(problem, data, law_opts).items()
        if v.size > 2 and (v > 0).all() and not _single_value(v)
    }
    columns, out = list(sizes), []
    for i, a in enumerate(columns):
        for b in columns[i + 1 :]:
            if sizes[a].size != sizes[b].size:
                continue
            la, lb = np.log(sizes[a]), np.log(sizes[b])
            if abs(float(np.corrcoef(la, lb)[0, 1])) >= CONFOUNDED_CORRELATION:
                ratio = float(np.exp(np.median(lb - la)))
                out.append({"columns": [a, b], "ratio": ratio})
    return out


def data_range(
    problem: Problem, data: pd.DataFrame, law_opts: dict[str, Any]
) -> dict[str, list[float]]:
    """The fitted [min, max] of each size input, and of C = 6ND for a law of both."""
    sizes = _size_values(problem, data, law_opts)
    out = {c: [float(v.min()), float(v.max())] for c, v in sizes.items() if v.size}
    n, d = sizes.get("params"), sizes.get("tokens")
    if n is not None and d is not None and n.size == d.size and n.size:
        c = 6.0 * n * d
        out["flops"] = [float(c.min()), float(c.max())]
    return out


def _rises(
    law: Law, theta: np.ndarray, data: pd.DataFrame, options: dict[str, Any], column: str
) -> bool:
    """Whether halving ``column`` lowers the law's prediction on most rows of ``data``."""
    try:
        base = law.predict(theta[None, :], law.prepare(data, for_fit=False, **options))[0]
        halved = data.assign(**{column: pd.to_numeric(data[column], errors="coerce") / 2})
        smaller = law.predict(theta[None, :], law.prepare(halved, for_fit=False, **options))[0]
    except (FitError, ValueError, KeyError):
        return False
    finite = np.isfinite(base) & np.isfinite(smaller)
    return bool(finite.any() and (smaller < base - 1e-9 * np.abs(base))[finite].mean() > 0.5)


@functools.cache
def _rises_by_design(law: Law) -> bool:
    """Whether the law's own example (its known truth) rises with one of its sizes: the law
    models a score that grows with scale, not a loss, and rising is no doubt."""
    try:
        truth, frame = law.example(np.random.default_rng(0))
        options = law.resolve(frame)
        theta = np.array([truth.get(p.name, 0.0) for p in law.parameters(None, **options)])
    except (FitError, ValueError, KeyError):
        return False
    sizes = [c for c in law.size_inputs(options) if c in frame.columns]
    return any(_rises(law, theta, frame, options, c) for c in sizes)


def rises_with(
    problem: Problem, theta: np.ndarray, data: pd.DataFrame, law_opts: dict[str, Any]
) -> list[str]:
    """Size inputs along which the fitted loss rises (halving the column lowers the
    predicted loss on most fit points), for a law whose loss is meant to fall with size."""
    law = problem.law
    if len(data) != problem.prep.n_rows or law.kind != "points" or law.rising:
        return []  # curve laws: cumulative features; a score law: it is meant to rise
    if _rises_by_design(law):
        return []
    rows = data[problem.prep.fit_mask].reset_index(drop=True)
    return [
        c for c in _size_values(problem, data, law_opts) if _rises(law, theta, rows, law_opts, c)
    ]


def diagnose(
    problem: Problem,
    z: np.ndarray,
    stderr: np.ndarray,
    data: pd.DataFrame,
    law_opts: dict[str, Any],
) -> dict[str, Any]:
    """The doubts about a finished fit, as ``FitResult.checks`` entries (only those that
    apply): ``at_bound``, ``undetermined``, ``constant_inputs``, ``confounded_inputs``,
    ``rises_with``."""
    out: dict[str, Any] = {}
    bound = at_bounds(problem, z)
    if bound:
        out["at_bound"] = bound
    undetermined = [n for n, se in zip(problem.free_names, stderr, strict=True) if not se < np.inf]
    if undetermined:
        out["undetermined"] = undetermined
    sizes = _size_values(problem, data, law_opts)
    constant = {c: float(v[0]) for c, v in sizes.items() if _single_value(v)}
    if constant:
        out["constant_inputs"] = constant
    confounded = confounded_inputs(problem, data, law_opts)
    if confounded:
        out["confounded_inputs"] = confounded
    rising = rises_with(problem, problem.theta(z)[0], data, law_opts)
    if rising:
        out["rises_with"] = rising
    return out
