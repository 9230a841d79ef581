"""A law bound to its data: optimiser vectors, residuals, the robust objective.

The optimiser works on ``z``, the free parameters with ``log=True`` ones as ``log(value)``
(Hoffmann et al.'s ``a = log A`` parametrisation); ``theta`` is the full natural-unit vector
the law computes with, fixed values included. Residuals are on log loss by default:
``r = log y - log L(theta)``; the objective is ``sum_i w_i * rho(r_i)`` with Huber's rho
(delta 1e-3, the Hoffmann / Besiroglu convention) or ``r^2 / 2`` for least squares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fitting.errors import FitError, TooFewPointsError
from fitting.laws.base import Law, Parameter, Prepared

# Predictions are floored here before the log: a start whose curve dips to zero or below
# gets a large finite residual instead of NaN.
_FLOOR = 1e-12
# No cross-entropy in nats or bits, nor the perplexity of any vocabulary, comes near this:
# a larger "loss" is a diverged run or another quantity, and would overflow the fit.
MAX_LOSS = 1e6
# Memory budget for one (K, M, P) Jacobian block, in float64 elements.
JACOBIAN_BUDGET = 6_000_000


def rho(r: np.ndarray, loss: str, delta: float) -> np.ndarray:
    """Per-point loss: Huber (quadratic within delta, linear beyond) or r^2 / 2."""
    if loss == "ls":
        return 0.5 * r * r
    a = np.abs(r)
    c = np.minimum(a, delta)  # c * (a - c / 2) is a^2 / 2 inside delta, linear beyond
    return c * (a - 0.5 * c)


def psi(r: np.ndarray, loss: str, delta: float) -> np.ndarray:
    """Derivative of rho."""
    return r if loss == "ls" else np.clip(r, -delta, delta)


@dataclass
class Problem:
    """Everything the optimiser needs; built and validated by `build_problem`."""

    law: Law
    prep: Prepared
    params: list[Parameter]
    theta_fixed: np.ndarray  # (P,) natural units; free entries are placeholders
    free: np.ndarray  # indices of the free parameters in theta
    log: np.ndarray  # (F,) which free parameters are optimised as log(value)
    lo: np.ndarray  # (F,) bounds in optimiser space
    hi: np.ndarray
    loss: str
    delta: float
    log_residuals: bool
    rows: np.ndarray  # indices of the fit rows
    target: np.ndarray  # log y (or y) on the fit rows
    # Tied parameters (`fitting.constraints`): entry i of theta takes the value of entry
    # tied[i]; None when nothing is tied. ``ties`` names them: dependent -> source.
    tied: np.ndarray | None = None
    ties: dict[str, str] | None = None

    @property
    def n_free(self) -> int:
        return int(self.free.size)

    @property
    def n_points(self) -> int:
        return int(self.rows.size)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def free_names(self) -> list[str]:
        return [self.params[i].name for i in self.free]

    def theta(self, z: np.ndarray) -> np.ndarray:
        """Optimiser vectors (K, F) -> natural parameter vectors (K, P)."""
        z = np.atleast_2d(z)
        out = np.repeat(self.theta_fixed[None, :], z.shape[0], axis=0)
        out[:, self.free] = np.where(self.log, np.exp(z), z)
        return out if self.tied is None else out[:, self.tied]

    def to_z(self, theta: np.ndarray) -> np.ndarray:
        """Natural vectors (K, P) -> optimiser vectors (K, F), clipped into the bounds."""
        sub = np.atleast_2d(theta)[:, self.free]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(self.log, np.log(np.maximum(sub, 1e-300)), sub)
        return np.clip(z, self.lo, self.hi)

    def residuals(self, z: np.ndarray) -> np.ndarray:
        """r (K, Mf) on the fit rows."""
        return self.residuals_and_pred(z)[0]

    def residuals_and_pred(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(r, predictions) on the fit rows, both (K, Mf)."""
        pred = self.law.predict(self.theta(z), self.prep)
        if self.rows.size < pred.shape[1]:
            pred = pred[:, self.rows]
        if self.log_residuals:
            return self.target - np.log(np.maximum(pred, _FLOOR)), pred
        return self.target - pred, pred

    def jacobian(
        self, z: np.ndarray, pred: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(r, dr/dz): residuals (K, Mf) and their Jacobian (K, Mf, F). ``pred`` (on the
        fit rows), when the caller already has it, saves one evaluation of the law."""
        theta = self.theta(z)
        grad = self.law.gradient(theta, self.prep)
        if pred is None:
            pred = self.law.predict(theta, self.prep)
            if self.rows.size < pred.shape[1]:
                pred = pred[:, self.rows]
        if self.rows.size < grad.shape[1]:  # skip the copy when every row is a fit row
            grad = grad[:, self.rows]
        if self.tied is not None:  # a tied parameter moves with its source
            grad = np.array(grad, copy=True)
            for i in np.flatnonzero(self.tied != np.arange(self.tied.size)):
                grad[:, :, self.tied[i]] += grad[:, :, i]
        if self.free.size < theta.shape[1]:
            grad = grad[:, :, self.free]
        # Chain rule for log-scale parameters (d/dz = value * d/dvalue) and for the log
        # residual (dr = -dpred / pred), in place.
        col = np.where(self.log, theta[:, self.free], 1.0)[:, None, :]
        if self.log_residuals:
            safe = np.maximum(pred, _FLOOR)
            grad *= col
            grad *= (-1.0 / safe)[:, :, None]
            return self.target - np.log(safe), grad
        grad *= -col
        return self.target - pred, grad

    def objective(self, z: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """sum_i w_i rho(r_i) for each row of z; w is (Mf,) or (K, Mf), default ones."""
        out = np.empty(np.atleast_2d(z).shape[0])
        for sl in self.chunks(out.size):
            r = self.residuals(np.atleast_2d(z)[sl])
            val = rho(r, self.loss, self.delta)
            out[sl] = (val if w is None else val * _rows_of(w, sl)).sum(axis=1)
        return out

    def chunks(self, k: int) -> list[slice]:
        """Slices of at most as many starts as fit one Jacobian block in memory."""
        per = max(1, JACOBIAN_BUDGET // max(1, self.prep.n_rows * len(self.params)))
        return [slice(i, min(i + per, k)) for i in range(0, k, per)]


def _rows_of(w: np.ndarray, sl: slice) -> np.ndarray:
    return w if w.ndim == 1 else w[sl]


def build_problem(
    law: Law,
    prep: Prepared,
    law_options: dict[str, Any],
    *,
    loss: str,
    delta: float,
    fix: dict[str, float],
    log_residuals: bool,
    tie: dict[str, str] | None = None,
) -> Problem:
    """Validate the prepared data and options; FitError names what is wrong."""
    params = law.parameters(None, **law_options)
    tied = None
    if tie:
        from dataclasses import replace

        from fitting.constraints import tie_index

        tied, bounds = tie_index(params, tie, fix)
        params = [replace(p, lower=bounds[p.name][0], upper=bounds[p.name][1]) for p in params]
    names = [p.name for p in params]
    if loss not in ("huber", "ls"):
        raise FitError(f"loss must be 'huber' or 'ls', not {loss!r}")
    if not (math.isfinite(delta) and delta > 0):
        raise FitError(f"delta must be a positive number, not {delta!r}")
    theta_fixed = np.zeros(len(params))
    for key, value in fix.items():
        if key not in names:
            raise FitError(
                f"cannot fix {key!r}: law {law.name!r} has parameters {', '.join(names)}"
            )
        if not math.isfinite(float(value)):
            raise FitError(f"fixed value of {key!r} must be a finite number, not {value!r}")
        theta_fixed[names.index(key)] = float(value)
    free = np.array(
        [i for i, n in enumerate(names) if n not in fix and n not in (tie or {})], dtype=int
    )
    if free.size == 0:
        raise FitError("every parameter is fixed: nothing to fit")
    rows = np.flatnonzero(prep.fit_mask)
    y = prep.y[rows]
    _check_targets(law.name, y, free.size, log_residuals)
    log = np.array([params[i].log for i in free], dtype=bool)
    lo = np.array([math.log(params[i].lower) if params[i].log else params[i].lower for i in free])
    hi = np.array([math.log(params[i].upper) if params[i].log else params[i].upper for i in free])
    return Problem(
        law,
        prep,
        params,
        theta_fixed,
        free,
        log,
        lo,
        hi,
        loss,
        float(delta),
        log_residuals,
        rows,
        np.log(y) if log_residuals else y,
        tied,
        dict(tie) if tie else None,
    )


def _check_targets(law: str, y: np.ndarray, n_free: int, log_residuals: bool) -> None:
    if y.size < n_free + 1:
        raise TooFewPointsError(
            f"law {law!r}: too few points to fit ({y.size} point(s) for {n_free} "
            f"free parameter(s); need at least {n_free + 1})"
        )
    if not np.isfinite(y).all():
        raise FitError(f"law {law!r}: the loss has missing or non-finite values", column="loss")
    if (np.abs(y) > MAX_LOSS).any():
        first = int(np.argmax(np.abs(y) > MAX_LOSS))
        raise FitError(
            f"law {law!r}: {int((np.abs(y) > MAX_LOSS).sum())} loss value(s) are beyond "
            f"{MAX_LOSS:g} (the first, {float(y[first]):.6g}, at fit point {first}); no loss "
            "in nats or bits comes near that: a diverged run, or not a loss?",
            column="loss",
        )
    if log_residuals and (y <= 0).any():
        raise FitError(
            f"law {law!r}: loss must be positive to fit on log residuals "
            f"({int((y <= 0).sum())} row(s) are not)",
            column="loss",
        )
    if np.ptp(y) <= 1e-12 * max(1.0, float(np.abs(y).max())):
        raise FitError(
            f"law {law!r}: the loss is constant ({float(y[0])!r} on every point); "
            "a scaling law cannot be fitted to it",
            column="loss",
        )
