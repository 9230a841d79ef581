"""Profile-likelihood intervals through ``lmfit.conf_interval`` (engine option
``intervals="profile"``).

Each parameter is held at trial values while lmfit refits the others (MINPACK's
Levenberg-Marquardt on the pseudo-residuals ``sign(r) sqrt(2 rho(r))``, whose sum of
squares is twice the Huber objective, with their analytic Jacobian); the interval ends where
the rise of the objective is significant at the level. For an M-estimator the rise is
calibrated by the same quantities as the curvature: ``2 c dQ / s^2`` with ``c`` the mean
slope of psi and ``s^2 = sum psi^2 / (n - p)`` is compared with F(1, n - p) (for least
squares, c = 1 and this is the classical F profile).

Measured (bench/coverage_bench.py, BENCHMARKS.md): it covers better than the curvature but
below the bootstrap, at two to five times the bootstrap's cost, and lmfit gives up where
the profile is not monotone; so it is an option, not the default.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray

from fitting.objective import Problem, psi, rho


def _names(problem: Problem) -> list[str]:
    return [f"p{j}" for j in range(problem.n_free)]  # lmfit wants identifiers


def profile_intervals(
    problem: Problem, z: NDArray, level: float, cov: NDArray
) -> tuple[NDArray, NDArray]:
    """(lower, upper) in natural units for every free parameter; a side the profile never
    rises past the level on ends at the parameter's bound."""
    import lmfit
    from scipy.stats import f as f_dist

    from fitting.uncertainty import _natural, _psi_slope

    r0 = problem.residuals(z[None, :])[0]
    n, p = problem.n_points, problem.n_free
    p0 = psi(r0, problem.loss, problem.delta)
    s2 = max(float(p0 @ p0) / max(n - p, 1), 1e-300)
    c = 1.0 if problem.loss == "ls" else _psi_slope(r0, problem.delta)
    names = _names(problem)
    params = lmfit.Parameters()
    for j, name in enumerate(names):
        params.add(name, value=float(z[j]), min=float(problem.lo[j]), max=float(problem.hi[j]))

    def vector(pars: lmfit.Parameters) -> NDArray:
        return np.array([pars[name].value for name in names])

    def pseudo(pars: lmfit.Parameters) -> NDArray:
        r = problem.residuals(vector(pars)[None, :])[0]
        if problem.loss == "ls":
            return r
        return np.sign(r) * np.sqrt(2.0 * rho(r, problem.loss, problem.delta))

    def jac(pars: lmfit.Parameters) -> NDArray:
        zz = vector(pars)
        r, j = problem.jacobian(zz[None, :])
        r, j = r[0], j[0]
        if problem.loss != "ls":
            root = np.sqrt(np.maximum(2.0 * rho(r, problem.loss, problem.delta), 1e-300))
            slope = np.where(np.abs(r) <= problem.delta, 1.0, problem.delta / root)
            j = j * slope[:, None]
        varying = [k for k, name in enumerate(names) if pars[name].vary]
        return j[:, varying]

    mini = lmfit.Minimizer(pseudo, params, Dfun=jac)  # every refit of the profile uses it
    best = mini.minimize(method="leastsq")
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    for j, name in enumerate(names):
        ok = np.isfinite(se[j]) and se[j] > 0
        best.params[name].stderr = float(se[j]) if ok else 0.1 * max(1.0, abs(z[j]))

    def significance(best_fit: object, new_fit: object) -> float:
        rise = max(new_fit.chisqr - best_fit.chisqr, 0.0)  # type: ignore[attr-defined]
        return float(f_dist.cdf(rise * c / s2, 1, max(n - p, 1)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lmfit warns where a side reaches its bound
        try:
            ci = lmfit.conf_interval(mini, best, sigmas=[level], prob_func=significance)
        except (lmfit.minimizer.MinimizerException, ValueError):
            ci = {}
    lo, hi = np.array(problem.lo, dtype=float), np.array(problem.hi, dtype=float)
    for j, name in enumerate(names):
        if name in ci:
            a, b = ci[name][0][1], ci[name][-1][1]
            lo[j] = a if np.isfinite(a) else problem.lo[j]
            hi[j] = b if np.isfinite(b) else problem.hi[j]
    return _natural(problem, lo), _natural(problem, hi)
