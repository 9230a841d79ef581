"""Vectorised multi-start optimisation: batched Levenberg-Marquardt, then scipy polish.

All K starts move at once in numpy. Each iteration majorises the Huber objective by a
weighted least-squares problem (IRLS weights ``psi(r) / r``, which makes every accepted
step a descent step for the true objective) and takes a damped Gauss-Newton step on it,
with bound constraints by projection. Starts leave the batch as they converge. The best
few distinct optima are then polished with scipy's L-BFGS-B on the exact objective, so
the answer is as precise as a plain L-BFGS-B loop while the grid costs a few batched
passes instead of thousands of scipy calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fitting.objective import Problem, psi, rho
from fitting.progress import QUIET, Monitor


@dataclass
class MultiStart:
    """Outcome of a multi-start run: the best point and how it was found."""

    z: NDArray[np.float64]  # (F,) optimum in optimiser space
    objective: float
    n_starts: int
    n_iterations: int
    converged: bool


def _weights_rows(w: NDArray | None, idx: NDArray, m: int) -> NDArray:
    if w is None:
        return np.ones((1, m))
    return w[None, :] if w.ndim == 1 else w[idx]


def _normal_equations(
    problem: Problem, z: NDArray, w: NDArray, pred: NDArray | None = None
) -> tuple[NDArray, ...]:
    """Objective, gradient and IRLS Gauss-Newton matrix for each row of z."""
    k, f = z.shape
    obj, g, h = np.empty(k), np.empty((k, f)), np.empty((k, f, f))
    for sl in problem.chunks(k):
        r, jac = problem.jacobian(z[sl], None if pred is None else pred[sl])
        ww = w if w.shape[0] == 1 else w[sl]
        p = psi(r, problem.loss, problem.delta)
        obj[sl] = (rho(r, problem.loss, problem.delta) * ww).sum(axis=1)
        # psi(r)/r is 1 inside the Huber zone and delta/|r| beyond it.
        with np.errstate(divide="ignore", invalid="ignore"):
            irls = np.where(np.abs(r) > 0, p / r, 1.0) * ww
        g[sl] = np.einsum("kmf,km->kf", jac, p * ww)
        h[sl] = np.matmul(jac.transpose(0, 2, 1), jac * irls[:, :, None])
    return obj, g, h


def batched_lm(
    problem: Problem,
    z0: NDArray,
    w: NDArray | None = None,
    *,
    max_iter: int = 300,
    tol: float = 1e-11,
    monitor: Monitor = QUIET,
) -> tuple[NDArray, NDArray, int]:
    """Minimise from every row of z0 at once. w: (Mf,) shared or (K, Mf) per start.
    ``monitor``'s cancel event is checked before every iteration.

    Returns the optima (K, F), their objectives (K,) and the iterations used."""
    z = np.clip(np.array(z0, dtype=float), problem.lo, problem.hi)
    k, f = z.shape
    m = problem.n_points
    wk = np.ones((1, m)) if w is None else (w[None, :] if w.ndim == 1 else w)
    obj, g, h = _normal_equations(problem, z, wk)
    lam = np.full(k, 1e-3)
    active = np.isfinite(obj)
    eye = np.eye(f)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (reported to the caller)
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        monitor.check()
        wi = wk if wk.shape[0] == 1 else wk[idx]
        step = _lm_step(z[idx], g[idx], h[idx], lam[idx], problem, eye)
        trial = np.clip(z[idx] + step, problem.lo, problem.hi)
        r_t, pred_t = problem.residuals_and_pred(trial)
        t_obj = (rho(r_t, problem.loss, problem.delta) * wi).sum(axis=1)
        better = np.isfinite(t_obj) & (t_obj < obj[idx])
        acc, rej = idx[better], idx[~better]
        gain = (obj[acc] - t_obj[better]) / np.maximum(np.abs(obj[acc]), 1e-300)
        z[acc] = trial[better]
        lam[acc] = np.maximum(lam[acc] / 3.0, 1e-12)
        lam[rej] *= 4.0
        if acc.size:
            wa = wk if wk.shape[0] == 1 else wk[acc]
            obj[acc], g[acc], h[acc] = _normal_equations(problem, z[acc], wa, pred_t[better])
        # Converged: relative progress stalled, or an exact fit (objective ~ 0).
        active[acc[(gain < tol) | (obj[acc] < 1e-24)]] = False
        active[rej[lam[rej] > 1e10]] = False
    return z, obj, it


def _lm_step(
    z: NDArray, g: NDArray, h: NDArray, lam: NDArray, problem: Problem, eye: NDArray
) -> NDArray:
    """Damped Gauss-Newton step; variables pinned at a bound they push against are frozen."""
    pinned = ((z <= problem.lo) & (g > 0)) | ((z >= problem.hi) & (g < 0))
    keep = ~pinned
    gk = np.where(keep, g, 0.0)
    hk = h * (keep[:, :, None] & keep[:, None, :])
    diag = np.einsum("kii->ki", hk)
    scale = np.maximum(diag, 1e-12 * np.maximum(diag.max(axis=1, keepdims=True), 1e-300))
    a = hk + (lam[:, None] * scale + np.where(keep, 0.0, 1.0))[:, :, None] * eye
    try:
        return np.linalg.solve(a, -gk[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        return np.stack(
            [np.linalg.lstsq(ai, -gi, rcond=None)[0] for ai, gi in zip(a, gk, strict=True)]
        )


def polish(problem: Problem, z0: NDArray, w: NDArray | None = None) -> tuple[NDArray, float]:
    """scipy L-BFGS-B on the exact objective from one point, with tight tolerances."""
    from scipy.optimize import minimize  # imported here: keeps `import fitting` fast

    wk = _weights_rows(w, np.array([0]), problem.n_points)[0]

    def fun(zz: NDArray) -> tuple[float, NDArray]:
        r, jac = problem.jacobian(zz[None, :])
        val = float((rho(r[0], problem.loss, problem.delta) * wk).sum())
        grad = jac[0].T @ (psi(r[0], problem.loss, problem.delta) * wk)
        return val, grad

    res = minimize(
        fun,
        z0,
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(problem.lo, problem.hi, strict=True)),
        options={"maxiter": 200, "ftol": 1e-15, "gtol": 1e-12, "maxcor": 20},
    )
    return np.asarray(res.x, dtype=float), float(res.fun)


def distinct_best(z: NDArray, obj: NDArray, n: int) -> NDArray:
    """Indices of the n best optima, skipping near-duplicates of ones already kept."""
    order = np.argsort(np.where(np.isfinite(obj), obj, np.inf))
    kept: list[int] = []
    for i in order:
        if not np.isfinite(obj[i]):
            break
        if all(np.max(np.abs(z[i] - z[j]) / (1.0 + np.abs(z[j]))) > 1e-4 for j in kept):
            kept.append(int(i))
        if len(kept) == n:
            break
    return np.array(kept, dtype=int)


def _combine_blocks(problem: Problem, z: NDArray, w: NDArray | None) -> NDArray | None:
    """For separable laws: one vector made of each block's best start."""
    blocks = problem.law.blocks(problem.prep)
    if not blocks:
        return None
    per_row = rho(problem.residuals(z), problem.loss, problem.delta)
    if w is not None:
        per_row = per_row * w
    best = z[0].copy()
    pos = {int(p): j for j, p in enumerate(problem.free)}
    for params, rows in blocks:
        cols = [pos[int(p)] for p in params if int(p) in pos]
        mask = rows[problem.rows]
        if not cols or not mask.any():
            continue
        i = int(np.argmin(per_row[:, mask].sum(axis=1)))
        best[cols] = z[i, cols]
    return best


def successive_halving(
    problem: Problem,
    z0: NDArray,
    w: NDArray | None = None,
    *,
    stages: tuple[int, ...] = (6, 10, 20),
    keep: float = 0.25,
    floor: int = 48,
    max_iter: int = 300,
    monitor: Monitor = QUIET,
) -> tuple[NDArray, NDArray, int]:
    """A few LM iterations on every start, then keep the best quarter and go on, so the
    big grid costs a few batched passes; the survivors run to convergence.

    Reports ``("starts", done, total)`` at the start, after each stage (the starts left
    behind are done) and at the end."""
    z, iters, total = z0, 0, len(z0)
    monitor.report("starts", 0, total)
    for n_iter in stages:
        if len(z) <= floor:
            break
        z, obj, used = batched_lm(problem, z, w, max_iter=n_iter, monitor=monitor)
        iters += used
        order = np.argsort(np.where(np.isfinite(obj), obj, np.inf))
        z = z[order[: max(floor, int(np.ceil(keep * len(z))))]]
        monitor.report("starts", total - len(z), total)
    z, obj, used = batched_lm(problem, z, w, max_iter=max_iter, monitor=monitor)
    monitor.report("starts", total, total)
    return z, obj, iters + used


def multistart(
    problem: Problem,
    starts: NDArray,
    w: NDArray | None = None,
    *,
    n_polish: int = 4,
    max_iter: int = 300,
    monitor: Monitor = QUIET,
) -> MultiStart:
    """Batched LM from every start, then polish the best few distinct optima.

    w: optional per-row weights on the fit rows (the extrapolation test zeroes some);
    ``monitor``: progress of the starts, and a cancel checked between iterations and
    before each polish."""
    z0 = problem.to_z(starts)
    z, obj, iters = successive_halving(problem, z0, w, max_iter=max_iter, monitor=monitor)
    combined = _combine_blocks(problem, z, w)
    if combined is not None:
        zc, oc, _ = batched_lm(problem, combined[None, :], w, max_iter=max_iter, monitor=monitor)
        z, obj = np.vstack([z, zc]), np.concatenate([obj, oc])
    best_z, best_obj = None, np.inf
    for i in distinct_best(z, obj, n_polish):
        if best_z is not None and obj[i] > 1.01 * best_obj:
            break  # far behind the best: polishing will not overtake it
        monitor.check()
        zp, op = polish(problem, z[i], w)
        cand = (zp, op) if op <= obj[i] else (z[i], float(obj[i]))
        if cand[1] < best_obj:
            best_z, best_obj = cand
    converged = best_z is not None and bool(np.isfinite(best_obj))
    if best_z is None:
        best_z = z0[0]
    return MultiStart(np.asarray(best_z), float(best_obj), len(starts), iters, converged)
