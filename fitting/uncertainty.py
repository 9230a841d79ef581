"""Uncertainty of a fit: the method that covers by default, its intervals, its bands' scales.

Methods (engine option ``intervals``; every output names the one it used, and ``stderr``
and the intervals always come from it):

- ``bootstrap``: refit ``bootstrap`` resamples (default 400) of runs or points, expressed as
  per-row weights and batched (`batched_lm` from the optimum plus two jittered starts);
  ``stderr`` is the spread of the refits, the interval their percentiles. Resampling
  (``resample="auto"``): whole runs when the fit has at least 5 runs, else points.
- ``sandwich``: the robust M-estimator covariance ``H^-1 M H^-1`` with ``H = c J^T J``
  (``c`` the mean slope of psi, smoothed for Huber) and ``M`` the scores' outer products,
  summed with Bartlett weights over neighbouring steps of a run (Newey-West, the lag from
  Andrews' AR(1) rule) so the serial correlation of a loss curve's residuals counts;
  Student-t quantiles with n - p degrees of freedom, Wald intervals in the optimiser's
  parametrisation (so log-scale parameters stay positive), clipped to the bounds.
- ``profile``: profile-likelihood intervals from ``lmfit.conf_interval`` (`fitting.profile`).
- ``curvature``: ``s^2 / c^2 (J^T J)^-1`` with normal quantiles (the old default, kept for
  comparison: it covers 66-93% at nominal 95%, see BENCHMARKS.md).

``auto`` (the default) picks by the law's kind: point laws get the bootstrap (95-100%
coverage at nominal 95% on the known-truth cases of bench/coverage_bench.py, 0.2-1 s),
curve laws the sandwich (a curve law's refit costs ~0.3 s, so 400 of them would take
minutes). An explicit ``bootstrap=N`` > 0 asks for the bootstrap, ``bootstrap=0`` for none.

Whatever the method, a parameter the curvature cannot determine (it moves along a flat
direction of the objective) gets an infinite standard error and the interval (-inf, inf).

Bands (`FitResult.bands`): the confidence band of the law comes from the same method; the
prediction band for a new observation adds the residual scale (``residual_sd``, in the
residuals' units: log loss by default) and, for curve laws, the between-run error
``between_run_sd`` estimated by refitting with each run left out and scoring it, and past
the largest fitted step an error growing as ``beyond_sd_per_log * log(step / last step)``
(measured by refitting every run's first half and scoring its second half).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fitting import threads
from fitting.errors import FitError
from fitting.objective import Problem, psi
from fitting.optimize import batched_lm
from fitting.progress import QUIET, Monitor, chunk_size

METHODS = ("auto", "bootstrap", "sandwich", "profile", "curvature")
DEFAULT_RESAMPLES = 400
# An interval end this close to a bound (relative to the bound's size, in optimiser space)
# is clipped by it.
CLIP_TOLERANCE = 1e-6


def choose_method(problem: Problem, method: str, n_boot: int | None) -> str:
    """The method ``auto`` stands for here (see the module docstring for the rule)."""
    if method not in METHODS:
        raise FitError(f"intervals must be one of {', '.join(METHODS)}, not {method!r}")
    if method != "auto":
        return method
    if n_boot is not None:
        return "bootstrap" if n_boot > 0 else "sandwich"
    return "sandwich" if problem.law.kind == "curves" else "bootstrap"


def _pseudo_inverse(jtj: NDArray) -> NDArray:
    """Inverse of J^T J on its determined directions; inf rows/columns for parameters that
    move along a flat direction (undetermined by the data)."""
    scale = np.sqrt(np.maximum(np.diag(jtj), 1e-300))
    normed = jtj / np.outer(scale, scale)  # equilibrate before judging the conditioning
    eig, vec = np.linalg.eigh(normed)
    null = eig <= 1e-13 * max(float(eig.max()), 1e-300)
    inv = (vec[:, ~null] / eig[~null]) @ vec[:, ~null].T
    inv = inv / np.outer(scale, scale)
    weak = (np.abs(vec[:, null]) > 1e-3).any(axis=1)
    inv[weak, :] = np.inf
    inv[:, weak] = np.inf
    return inv


def curvature_cov(problem: Problem, z: NDArray) -> NDArray:
    """Covariance of z (F, F) from the curvature; inf where a parameter is unidentified."""
    r, jac = problem.jacobian(z[None, :])
    r, jac = r[0], jac[0]
    n, f = jac.shape
    p = psi(r, problem.loss, problem.delta)
    s2 = float(p @ p) / max(n - f, 1)
    c = 1.0 if problem.loss == "ls" else _psi_slope(r, problem.delta)
    return _pseudo_inverse(jac.T @ jac) * (s2 / (c * c))


def _psi_slope(r: NDArray, delta: float) -> float:
    """Mean of psi' smoothed over a Silverman bandwidth (Huber's psi' is 0 or 1)."""
    n = r.size
    iqr = float(np.subtract(*np.percentile(r, [75, 25])))
    spread = min(float(np.std(r)), iqr / 1.349) or float(np.std(r)) or 1e-12
    h = max(0.9 * spread * n**-0.2, 1e-12)
    slope = (np.clip(r + h, -delta, delta) - np.clip(r - h, -delta, delta)) / (2 * h)
    return max(float(slope.mean()), 1e-12)


def _run_order(problem: Problem) -> list[NDArray]:
    """Positions (in fit-row order) of each run's rows, sorted by step/scale."""
    groups = problem.prep.groups[problem.rows]
    scale = np.asarray(problem.prep.scale, dtype=float)[problem.rows]
    out = []
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        out.append(idx[np.argsort(scale[idx], kind="stable")])
    return out


def hac_lag(values: NDArray, runs: list[NDArray]) -> int:
    """Bartlett lag from Andrews' (1991) AR(1) plug-in on the pooled within-run lag-1
    autocorrelation of ``values``; 0 when no run has two rows."""
    num = den = 0.0
    longest = 1
    for idx in runs:
        v = values[idx]
        longest = max(longest, v.size)
        if v.size > 1:
            num += float(v[1:] @ v[:-1])
            den += float(v @ v)
    if longest < 2 or den <= 0:
        return 0
    rho = float(np.clip(num / den, -0.97, 0.97))
    alpha = 4 * rho * rho / (1 - rho * rho) ** 2
    n = sum(idx.size for idx in runs) / len(runs)
    return int(min(longest - 1, math.ceil(1.1447 * (alpha * n) ** (1 / 3))))


def sandwich_cov(problem: Problem, z: NDArray) -> tuple[NDArray, int]:
    """Robust covariance of z (F, F) and the HAC lag used (see the module docstring)."""
    r, jac = problem.jacobian(z[None, :])
    r, jac = r[0], jac[0]
    n, f = jac.shape
    p = psi(r, problem.loss, problem.delta)
    c = 1.0 if problem.loss == "ls" else _psi_slope(r, problem.delta)
    scores = jac * p[:, None]
    runs = _run_order(problem)
    lag = hac_lag(p, runs)
    meat = scores.T @ scores
    for idx in runs:
        s = scores[idx]
        for k in range(1, min(lag, s.shape[0] - 1) + 1):
            gamma = s[k:].T @ s[:-k]
            meat += (1.0 - k / (lag + 1.0)) * (gamma + gamma.T)
    meat *= n / max(n - f, 1)
    bread = _pseudo_inverse(jac.T @ jac) / c
    weak = ~np.isfinite(np.diag(bread))
    b = np.where(np.isfinite(bread), bread, 0.0)
    cov = b @ meat @ b
    cov[weak, :] = np.inf
    cov[:, weak] = np.inf
    return cov, lag


def natural_stderr(problem: Problem, z: NDArray, cov: NDArray) -> NDArray:
    """Standard errors in natural units (delta method for log-scale parameters), (F,)."""
    se_z = np.sqrt(np.maximum(np.diag(cov), 0.0))
    value = problem.theta(z)[0, problem.free]
    with np.errstate(invalid="ignore"):  # inf * 0 on an undetermined parameter at 0
        scaled = np.where(np.isinf(se_z), np.inf, se_z * np.abs(value))
    return np.where(problem.log, scaled, se_z)


def resample_unit(problem: Problem, by: str) -> str:
    """What the bootstrap resamples: "runs" (at least 5 runs, or asked) or "points"."""
    groups = problem.prep.groups[problem.rows]
    if by == "points" or (by == "auto" and np.unique(groups).size < 5):
        return "points"
    return "runs"


def resample_weights(problem: Problem, n: int, rng: np.random.Generator, by: str) -> NDArray:
    """(n, Mf) multiplicities of each fit row under n bootstrap resamples."""
    groups = problem.prep.groups[problem.rows]
    if resample_unit(problem, by) == "points":
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


def _refit_chunk(args: tuple[Problem, NDArray, NDArray, int], monitor: Monitor = QUIET) -> NDArray:
    problem, starts, weights, per = args
    w = np.repeat(weights, 1 + per, axis=0)
    z, obj, _ = batched_lm(problem, starts, w, max_iter=200, tol=1e-9, monitor=monitor)
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
    monitor: Monitor = QUIET,
) -> NDArray:
    """n refits on resampled data; returns natural-unit parameter samples (n, P).

    ``monitor`` hears ``("bootstrap", done, n)`` before the first chunk and after each;
    its cancel is checked between chunks (and between iterations in this process)."""
    rng = np.random.default_rng(seed)
    weights = resample_weights(problem, n, rng, by)
    se_z = np.sqrt(np.maximum(np.diag(cov), 0.0))
    starts = _perturbed_starts(problem, z, se_z, n, per, rng)
    # Chunks small enough for memory, and several per worker so the pool balances.
    largest = max(1, min(250, 4_000_000 // max(1, problem.prep.n_rows * (1 + per))))
    per_chunk = chunk_size(n, largest, monitor)
    # A watched bootstrap (the dashboard) stays in this process unless asked otherwise:
    # its progress then moves per chunk and a cancel lands within one iteration.
    workers = 1 if monitor.active and n_jobs is None else _workers(n_jobs, n * problem.n_points)
    if workers > 1:
        per_chunk = max(1, min(per_chunk, -(-n // (4 * workers))))
    jobs = []
    for i in range(0, n, per_chunk):
        j = min(n, i + per_chunk)
        jobs.append((problem, starts[i * (1 + per) : j * (1 + per)], weights[i:j], per))
    workers = min(workers, len(jobs))
    monitor.report("bootstrap", 0, n)
    if workers > 1:
        parts = _pooled(jobs, workers, n, monitor)
    else:
        parts, done = [], 0
        for job in jobs:
            parts.append(_refit_chunk(job, monitor))
            done += len(job[2])
            monitor.report("bootstrap", done, n)
    return problem.theta(np.vstack(parts))


def _pooled(
    jobs: list[tuple[Problem, NDArray, NDArray, int]], workers: int, n: int, monitor: Monitor
) -> list[NDArray]:
    """The chunks on a process pool, in order. A watched pool polls for a cancel and hands
    it to the workers (a process-shared event they check every iteration), so a cancel
    ends the running chunks too instead of waiting for them."""
    ctx = get_context("forkserver")
    shared = ctx.Event() if monitor.cancel is not None else None
    parts: list[NDArray | None] = [None] * len(jobs)
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(shared,)
    ) as pool:
        futures = {pool.submit(_worker_chunk, job): i for i, job in enumerate(jobs)}
        pending, done = set(futures), 0
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in finished:
                    parts[futures[future]] = future.result()
                    done += len(jobs[futures[future]][2])
                    monitor.report("bootstrap", done, n)
                monitor.check()
        except BaseException:
            if shared is not None:
                shared.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [p for p in parts if p is not None]


_WORKER_CANCEL: Any = None  # in a bootstrap worker: the pool's shared cancel event


def _init_worker(cancel: Any) -> None:
    global _WORKER_CANCEL
    _WORKER_CANCEL = cancel
    threads.single()  # the pool's processes fill the cores already


def _worker_chunk(job: tuple[Problem, NDArray, NDArray, int]) -> NDArray:
    return _refit_chunk(job, Monitor(cancel=_WORKER_CANCEL))


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


def quantile(level: float, df: float | None) -> float:
    """Two-sided quantile: Student-t with ``df`` degrees of freedom, normal without."""
    from scipy.stats import norm, t

    if df is None or not np.isfinite(df):
        return float(norm.ppf(0.5 + level / 2))
    return float(t.ppf(0.5 + level / 2, max(float(df), 1.0)))


def wald_intervals(
    problem: Problem, z: NDArray, cov: NDArray, level: float, df: float | None = None
) -> tuple[NDArray, NDArray]:
    """z +/- q * se in optimiser space clipped to the bounds, mapped back (so log-scale
    bounds stay positive); q is normal, or Student-t with ``df``."""
    q = quantile(level, df)
    se_z = np.sqrt(np.maximum(np.diag(cov), 0.0))
    lo = np.maximum(z - q * se_z, problem.lo)
    hi = np.minimum(z + q * se_z, problem.hi)
    lo = np.where(np.isfinite(se_z), lo, -np.inf)
    hi = np.where(np.isfinite(se_z), hi, np.inf)
    with np.errstate(over="ignore"):
        return _natural(problem, lo), _natural(problem, hi)


def _natural(problem: Problem, zz: NDArray) -> NDArray:
    with np.errstate(over="ignore"):
        return np.where(problem.log, np.exp(zz), zz)


def clipped_sides(problem: Problem, lo: NDArray, hi: NDArray) -> dict[str, str]:
    """Parameters whose interval ends on a bound of the law: name -> lower/upper/both."""
    with np.errstate(divide="ignore", invalid="ignore"):
        zlo = np.where(problem.log, np.log(np.maximum(lo, 1e-300)), lo)
        zhi = np.where(problem.log, np.log(np.maximum(hi, 1e-300)), hi)
    out = {}
    for j, name in enumerate(problem.free_names):
        if not (np.isfinite(lo[j]) and np.isfinite(hi[j])):
            continue  # undetermined: flagged as such
        low = zlo[j] <= problem.lo[j] + CLIP_TOLERANCE * max(1.0, abs(problem.lo[j]))
        high = zhi[j] >= problem.hi[j] - CLIP_TOLERANCE * max(1.0, abs(problem.hi[j]))
        if low or high:
            out[name] = "both" if low and high else ("lower" if low else "upper")
    return out


def residual_sd(problem: Problem, z: NDArray) -> float:
    """Scale of a new observation's residual: sqrt(sum r^2 / (n - p))."""
    r = problem.residuals(z[None, :])[0]
    return float(np.sqrt(r @ r / max(problem.n_points - problem.n_free, 1)))


def between_run_sd(problem: Problem, z: NDArray) -> float | None:
    """RMS error on a run left out of the fit, pooled over runs (each refitted from the
    optimum without it, all at once); None for point laws or a single run."""
    groups = problem.prep.groups[problem.rows]
    uniq = np.unique(groups)
    if problem.law.kind != "curves" or uniq.size < 2:
        return None
    w = (groups[None, :] != uniq[:, None]).astype(float)
    zk, _, _ = batched_lm(problem, np.repeat(z[None, :], uniq.size, axis=0), w, max_iter=100)
    r = problem.residuals(zk)
    ms = [float(np.mean(r[k, groups == g] ** 2)) for k, g in enumerate(uniq)]
    return float(np.sqrt(np.mean(ms)))


def beyond_slope(problem: Problem, z: NDArray) -> float | None:
    """For curve laws: how fast a prediction's error grows past the fitted steps, as the
    RMS error per unit of log(step / last fitted step). Measured by refitting on the first
    half of every run (from the optimum) and scoring the second half; None otherwise."""
    if problem.law.kind != "curves":
        return None
    scale = np.asarray(problem.prep.scale, dtype=float)[problem.rows]
    groups = problem.prep.groups[problem.rows]
    cut = np.empty_like(scale)
    for g in np.unique(groups):
        cut[groups == g] = 0.5 * scale[groups == g].max()
    held = (scale > cut) & (cut > 0)
    if held.sum() < 2 or (~held).sum() <= problem.n_free:
        return None
    zk, _, _ = batched_lm(problem, z[None, :], (~held).astype(float)[None, :], max_iter=100)
    r = problem.residuals(zk)[0][held]
    d = np.log(scale[held] / cut[held])
    return float(np.sqrt(np.mean(r * r) / max(float(np.mean(d * d)), 1e-12)))


@dataclass
class Uncertainty:
    """Everything a fit reports about its uncertainty, over the free parameters."""

    method: str  # bootstrap / sandwich / profile / curvature
    cov: NDArray  # (F, F) in optimiser space, from the method (bootstrap: of the refits)
    stderr: NDArray  # (F,) natural units, from the method
    lo: NDArray  # (F,) interval bounds, from the method
    hi: NDArray
    samples: NDArray | None  # (B, P) bootstrap refits in natural units, all parameters
    info: dict[str, Any] = field(default_factory=dict)  # recorded as FitResult.uncertainty
    clipped: dict[str, str] = field(default_factory=dict)

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
    method: str = "auto",
    n_boot: int | None = None,
    seed: int = 0,
    by: str = "auto",
    n_jobs: int | None = None,
    monitor: Monitor = QUIET,
) -> Uncertainty:
    """The fit's uncertainty by ``method`` (``auto``: see `choose_method`); ``monitor``
    follows the bootstrap and can cancel it."""
    method = choose_method(problem, method, n_boot)
    curv = curvature_cov(problem, z)
    undetermined = ~np.isfinite(np.diag(curv))
    df = max(problem.n_points - problem.n_free, 1)
    info: dict[str, Any] = {"method": method, "level": level, "df": df}
    info["residuals"] = "log" if problem.log_residuals else "linear"
    info["residual_sd"] = residual_sd(problem, z)
    between = between_run_sd(problem, z)
    if between is not None:
        info["between_run_sd"] = between
    slope = beyond_slope(problem, z)
    if slope is not None:  # the prediction band widens past the largest fitted step
        info["beyond_sd_per_log"] = slope
        info["scale_max"] = float(np.max(np.asarray(problem.prep.scale)[problem.rows]))
    samples = None
    if method == "bootstrap":
        n = DEFAULT_RESAMPLES if not n_boot else int(n_boot)
        samples = bootstrap(problem, z, curv, n, seed=seed, by=by, n_jobs=n_jobs, monitor=monitor)
        free = samples[:, problem.free]
        lo, hi = percentile_intervals(free, level)
        se = np.std(free, axis=0, ddof=1)
        cov = np.atleast_2d(np.cov(problem.to_z(samples), rowvar=False))
        info.update(resample=resample_unit(problem, by), n_resamples=n, quantile="percentile")
    elif method == "profile":
        from fitting.profile import profile_intervals

        cov = curvature_cov(problem, z)
        se = natural_stderr(problem, z, cov)
        monitor.check()
        lo, hi = profile_intervals(problem, z, level, cov)
        monitor.check()
        info["quantile"] = f"F(1, {df}) drop in the objective"
    elif method == "sandwich":
        cov, lag = sandwich_cov(problem, z)
        se = natural_stderr(problem, z, cov)
        lo, hi = wald_intervals(problem, z, cov, level, df)
        info.update(quantile=f"Student-t, {df} df", hac_lag=lag)
    else:
        cov = curv
        se = natural_stderr(problem, z, cov)
        lo, hi = wald_intervals(problem, z, cov, level)
        info["quantile"] = "normal"
        info.pop("df")
    se = np.where(undetermined, np.inf, se)
    lo, hi = np.where(undetermined, -np.inf, lo), np.where(undetermined, np.inf, hi)
    cov = np.array(cov, dtype=float)
    cov[undetermined, :] = np.inf
    cov[:, undetermined] = np.inf
    return Uncertainty(method, cov, se, lo, hi, samples, info, clipped_sides(problem, lo, hi))
