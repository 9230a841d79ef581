"""Uncertainty: standard errors from the curvature, bootstrap refits, intervals.

Curvature: at the optimum the estimator is an M-estimator, so its covariance is
``s^2 / c^2 * (J^T J)^-1`` in optimiser space, with ``s^2 = sum psi(r)^2 / (n - p)`` and
``c`` the mean slope of psi. For least squares (c = 1) this is the classical
``sigma^2 (J^T J)^-1``. For Huber with delta = 1e-3 most residuals sit in the linear zone
where psi' is zero, so c is estimated by smoothing psi over a kernel bandwidth, which is
the usual density-at-zero estimate of median regression.

Bootstrap: resample runs (or points) with replacement, expressed as per-row weights, and
refit every resample from the full-data optimum plus a few perturbed starts, all batched;
large jobs are split over a process pool. The seed fixes the resamples, so the samples do
not depend on the number of workers.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
from numpy.typing import NDArray

from fitting.objective import Problem, psi
from fitting.optimize import batched_lm


def curvature_cov(problem: Problem, z: NDArray) -> NDArray:
    """Covariance of z (F, F) from the curvature; inf where a parameter is unidentified."""
    r, jac = problem.jacobian(z[None, :])
    r, jac = r[0], jac[0]
    n, f = jac.shape
    p = psi(r, problem.loss, problem.delta)
    s2 = float(p @ p) / max(n - f, 1)
    c = 1.0 if problem.loss == "ls" else _psi_slope(r, problem.delta)
    jtj = jac.T @ jac
    scale = np.sqrt(np.maximum(np.diag(jtj), 1e-300))
    normed = jtj / np.outer(scale, scale)  # equilibrate before judging the conditioning
    eig, vec = np.linalg.eigh(normed)
    null = eig <= 1e-13 * max(float(eig.max()), 1e-300)
    inv = (vec[:, ~null] / eig[~null]) @ vec[:, ~null].T
    cov = inv / np.outer(scale, scale)
    weak = (np.abs(vec[:, null]) > 1e-3).any(axis=1)  # moves along a flat direction
    cov[weak, :] = np.inf
    cov[:, weak] = np.inf
    return cov * (s2 / (c * c))


def _psi_slope(r: NDArray, delta: float) -> float:
    """Mean of psi' smoothed over a Silverman bandwidth (Huber's psi' is 0 or 1)."""
    n = r.size
    iqr = float(np.subtract(*np.percentile(r, [75, 25])))
    spread = min(float(np.std(r)), iqr / 1.349) or float(np.std(r)) or 1e-12
    h = max(0.9 * spread * n**-0.2, 1e-12)
    slope = (np.clip(r + h, -delta, delta) - np.clip(r - h, -delta, delta)) / (2 * h)
    return max(float(slope.mean()), 1e-12)


def natural_stderr(problem: Problem, z: NDArray, cov: NDArray) -> NDArray:
    """Standard errors in natural units (delta method for log-scale parameters), (F,)."""
    se_z = np.sqrt(np.maximum(np.diag(cov), 0.0))
    value = problem.theta(z)[0, problem.free]
    with np.errstate(invalid="ignore"):  # inf * 0 on an undetermined parameter at 0
        scaled = np.where(np.isinf(se_z), np.inf, se_z * np.abs(value))
    return np.where(problem.log, scaled, se_z)


def resample_weights(problem: Problem, n: int, rng: np.random.Generator, by: str) -> NDArray:
    """(n, Mf) multiplicities of each fit row under n bootstrap resamples."""
    groups = problem.prep.groups[problem.rows]
    if by == "points" or (by == "auto" and np.unique(groups).size < 5):
        groups = np.arange(problem.n_points)  # too few runs to resample them
    uniq, inverse = np.unique(groups, return_inverse=True)
    draws = rng.integers(0, uniq.size, size=(n, uniq.size))
    counts = np.zeros((n, uniq.size))
    np.add.at(counts, (np.arange(n)[:, None], draws), 1.0)
    return counts[:, inverse]


def _perturbed_starts(
    problem: Problem, z: NDArray, se_z: NDArray, n: int, per: int, rng: np.random.Generator
) -> NDArray:
    """(n * (1 + per), F): the optimum, then `per` jittered copies, for each resample."""
    width = np.where(np.isfinite(se_z), np.minimum(se_z, 1.0), 0.5) + 0.02 * np.abs(z)
    base = np.repeat(z[None, :], n * (1 + per), axis=0)
    jitter = rng.normal(size=base.shape) * width
    jitter[:: 1 + per] = 0.0
    return np.clip(base + jitter, problem.lo, problem.hi)


def _refit_chunk(args: tuple[Problem, NDArray, NDArray, int]) -> NDArray:
    problem, starts, weights, per = args
    w = np.repeat(weights, 1 + per, axis=0)
    z, obj, _ = batched_lm(problem, starts, w, max_iter=200, tol=1e-9)
    obj = np.where(np.isfinite(obj), obj, np.inf).reshape(len(weights), 1 + per)
    best = np.argmin(obj, axis=1)
    return z.reshape(len(weights), 1 + per, -1)[np.arange(len(weights)), best]


def bootstrap(
    problem: Problem,
    z: NDArray,
    cov: NDArray,
    n: int,
    *,
    seed: int = 0,
    by: str = "runs",
    n_jobs: int | None = None,
    per: int = 2,
) -> NDArray:
    """n refits on resampled data; returns natural-unit parameter samples (n, P)."""
    rng = np.random.default_rng(seed)
    weights = resample_weights(problem, n, rng, by)
    se_z = np.sqrt(np.maximum(np.diag(cov), 0.0))
    starts = _perturbed_starts(problem, z, se_z, n, per, rng)
    # Chunks small enough for memory, and several per worker so the pool balances.
    per_chunk = max(1, min(250, 4_000_000 // max(1, problem.prep.n_rows * (1 + per))))
    workers = _workers(n_jobs, n * problem.n_points)
    if workers > 1:
        per_chunk = max(1, min(per_chunk, -(-n // (4 * workers))))
    jobs = []
    for i in range(0, n, per_chunk):
        j = min(n, i + per_chunk)
        jobs.append((problem, starts[i * (1 + per) : j * (1 + per)], weights[i:j], per))
    workers = min(workers, len(jobs))
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("forkserver")) as pool:
            parts = list(pool.map(_refit_chunk, jobs))
    else:
        parts = [_refit_chunk(job) for job in jobs]
    return problem.theta(np.vstack(parts))


def _workers(n_jobs: int | None, work: int) -> int:
    """Explicit n_jobs wins; otherwise a pool only when the job is big enough to pay for
    starting the workers (about a second each)."""
    if n_jobs is not None:
        return max(1, int(n_jobs))
    if work < 2_000_000:
        return 1
    return max(1, os.cpu_count() or 1)


def percentile_intervals(samples: NDArray, level: float) -> tuple[NDArray, NDArray]:
    """Equal-tailed bootstrap interval per column."""
    tail = 50.0 * (1.0 - level)
    return np.percentile(samples, tail, axis=0), np.percentile(samples, 100.0 - tail, axis=0)


def wald_intervals(
    problem: Problem, z: NDArray, cov: NDArray, level: float
) -> tuple[NDArray, NDArray]:
    """z +/- q * se in optimiser space, mapped back (so log-scale bounds stay positive)."""
    from scipy.stats import norm

    q = float(norm.ppf(0.5 + level / 2))
    se_z = np.sqrt(np.maximum(np.diag(cov), 0.0))
    lo, hi = z - q * se_z, z + q * se_z
    with np.errstate(over="ignore"):
        return np.where(problem.log, np.exp(lo), lo), np.where(problem.log, np.exp(hi), hi)


@dataclass
class Uncertainty:
    """Everything a fit reports about its uncertainty, over the free parameters."""

    cov: NDArray  # (F, F) curvature covariance in optimiser space
    stderr: NDArray  # (F,) natural units
    lo: NDArray  # (F,) interval bounds: bootstrap percentiles, else Wald
    hi: NDArray
    samples: NDArray | None  # (B, P) bootstrap refits in natural units, all parameters

    def boot_sd(self) -> NDArray:
        """Standard deviation of the bootstrap refits per parameter (zeros without)."""
        if self.samples is None or len(self.samples) < 2:
            return np.zeros(0 if self.samples is None else self.samples.shape[1])
        return np.std(self.samples, axis=0, ddof=1)


def estimate(
    problem: Problem,
    z: NDArray,
    *,
    level: float,
    n_boot: int = 0,
    seed: int = 0,
    by: str = "auto",
    n_jobs: int | None = None,
) -> Uncertainty:
    """Curvature standard errors, plus bootstrap intervals when ``n_boot`` > 0."""
    cov = curvature_cov(problem, z)
    se = natural_stderr(problem, z, cov)
    if n_boot > 0:
        samples = bootstrap(problem, z, cov, n_boot, seed=seed, by=by, n_jobs=n_jobs)
        lo, hi = percentile_intervals(samples[:, problem.free], level)
        return Uncertainty(cov, se, lo, hi, samples)
    lo, hi = wald_intervals(problem, z, cov, level)
    return Uncertainty(cov, se, lo, hi, None)
