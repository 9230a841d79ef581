"""Intervals for any quantity derived from a fit, by the fit's own method: bootstrap
percentiles when the fit has bootstrap samples, else the delta method on its covariance
(numerical gradient of the quantity in the optimiser's parametrisation, where log-scale
parameters are logs) with the fit's quantile (Student-t for the sandwich). A quantity that
is positive at the optimum gets its delta interval on the log scale, so it stays positive.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fitting.errors import FitError
from fitting.laws import LAWS, Law, laws_supporting
from fitting.result import FitResult

Quantity = Callable[[dict[str, float]], np.ndarray]


def law_for(result: FitResult, analysis: str) -> Law:
    """The fit's law, or FitError (naming the laws that do) unless it supports ``analysis``."""
    law = LAWS.get(result.law)
    if law is None or not law.supports(analysis):
        able = " or ".join(laws_supporting(analysis))
        raise FitError(f"{analysis} needs a fit of {able}, not {result.law!r}")
    return law


def interval(
    result: FitResult, quantity: Quantity, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of ``quantity(params)`` (an array) at the given level."""
    if not 0 < level < 1:
        raise FitError(f"level must be between 0 and 1, not {level!r}")
    names = list(result.params)
    if result.bootstrap_samples:
        values = np.array(
            [
                np.atleast_1d(quantity(dict(zip(names, s, strict=True))))
                for s in result.bootstrap_samples
            ],
            dtype=float,
        )
        tail = 50.0 * (1.0 - level)
        return np.percentile(values, tail, axis=0), np.percentile(values, 100 - tail, axis=0)
    return _delta(result, quantity, level)


def method_text(result: FitResult) -> str:
    """How a derived answer's interval was computed, in words."""
    if result.bootstrap_samples:
        return f"bootstrap percentiles of the fit's refits ({result.method_text()})"
    return f"delta method on the fit's covariance ({result.method_text()})"


def _delta(result: FitResult, quantity: Quantity, level: float) -> tuple[np.ndarray, np.ndarray]:
    from fitting.uncertainty import quantile

    base = dict(result.params)
    raw = np.atleast_1d(np.asarray(quantity(base), dtype=float))
    positive = bool((raw > 0).all())
    if positive:  # the interval of log(quantity), mapped back
        inner = quantity

        def quantity(p: dict[str, float]) -> np.ndarray:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.log(np.atleast_1d(np.asarray(inner(p), dtype=float)))

    centre = np.atleast_1d(np.asarray(quantity(base), dtype=float))
    cov = np.asarray(result.covariance, dtype=float).reshape(len(result.free), -1)
    grads = np.zeros((len(result.free), centre.size))
    for j, name in enumerate(result.free):
        log = name in result.log_scale
        z = np.log(base[name]) if log else base[name]
        h = 1e-6 * max(1.0, abs(z))
        vals = []
        for zz in (z + h, z - h):
            moved = dict(base)
            moved[name] = float(np.exp(zz)) if log else zz
            vals.append(np.atleast_1d(np.asarray(quantity(moved), dtype=float)))
        grads[j] = (vals[0] - vals[1]) / (2 * h)
    finite = np.isfinite(np.diag(cov))
    var = np.einsum("fm,fg,gm->m", grads[finite], cov[np.ix_(finite, finite)], grads[finite])
    var = np.where((np.abs(grads[~finite]) > 0).any(axis=0), np.inf, np.maximum(var, 0.0))
    half = quantile(level, result.uncertainty.get("df")) * np.sqrt(var)
    if positive:
        with np.errstate(over="ignore", invalid="ignore"):
            return np.exp(centre - half), np.exp(centre + half)
    return centre - half, centre + half


def positive_array(value: float | np.ndarray | list[float], what: str) -> np.ndarray:
    """A positive finite float array, or FitError naming ``what``."""
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.size == 0 or not np.isfinite(arr).all() or (arr <= 0).any():
        raise FitError(f"{what} must be positive finite number(s), got {value!r}")
    return arr
