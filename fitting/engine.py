"""`fit(law, data, **options) -> FitResult`: the one entry point of the fitting engine.

Options (everything else is passed to the law, e.g. ``x`` for ``power_law``):

=================  =========================================================================
``loss``           ``"huber"`` (default) or ``"ls"`` (plain least squares)
``delta``          Huber threshold on the residuals, default 1e-3
``residuals``      ``"log"`` (default: ``log y - log L``) or ``"linear"``
``fix``            ``{"L_inf": 0}``: parameters held at a value, not optimised
``starts``         extra start vectors (list of dicts or (K, P) natural units) besides the
                   law's grid and guess; ``"guess"`` uses the guess alone
``n_polish``       distinct optima polished with scipy L-BFGS-B (default 4)
``intervals``      how stderr and intervals are computed: ``"auto"`` (default: the bootstrap
                   for point laws, the robust sandwich for curve laws), ``"bootstrap"``,
                   ``"sandwich"``, ``"profile"`` (lmfit) or ``"curvature"``; see
                   `fitting.uncertainty`
``bootstrap``      number of bootstrap refits (default: 400 when the method is the
                   bootstrap; an explicit 0 asks for no bootstrap)
``resample``       ``"runs"``, ``"points"`` or ``"auto"`` (default: runs when there are at
                   least 5 runs, else points)
``seed``           bootstrap seed (default 0)
``n_jobs``         bootstrap worker processes (default: automatic)
``level``          interval level, default 0.95
``extrapolation``  also run the extrapolation test (default False)
``holdout_factor`` extrapolation hold-out: rows within this factor of the largest scale
``accounting``     how N and C are counted (`fitting.accounting`: ``{"flops": "6ND",
                   "params": "non_embedding"}``); applied to the data, stored with the fit
=================  =========================================================================

Long fits (`fitting.progress`): ``progress(stage, done, total)`` hears the multi-start
(``"starts"``) and the bootstrap (``"bootstrap"``); setting the ``cancel`` event raises
`fitting.progress.Cancelled` within one optimiser iteration; ``first_result(result, data)``
gets the point estimate with sandwich intervals before a bootstrap or profile runs.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

import numpy as np
import pandas as pd

from fitting.checks import holdout_refit, refuse_flat_design
from fitting.errors import FitError
from fitting.laws.base import Law, Prepared
from fitting.objective import Problem, build_problem
from fitting.progress import CancelFlag, FirstResult, Monitor, Progress, resolve
from fitting.result import ENGINE_KEYS, FitResult
from fitting.starts import start_grid

DEFAULTS: dict[str, Any] = {
    "loss": "huber",
    "delta": 1e-3,
    "residuals": "log",
    "fix": {},
    "n_polish": 4,
    "bootstrap": None,
    "resample": "auto",
    "intervals": "auto",
    "seed": 0,
    "level": 0.95,
}


def get_law(law: str | Law) -> Law:
    """A law instance from its registry name (or the instance itself)."""
    if isinstance(law, Law):
        return law
    from fitting.laws import LAWS

    if law not in LAWS:
        raise FitError(f"unknown law {law!r}; known laws: {', '.join(sorted(LAWS))}")
    return LAWS[law]


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(engine options with defaults filled in, law options)."""
    engine = {**DEFAULTS, **{k: v for k, v in options.items() if k in ENGINE_KEYS}}
    engine["fix"] = {str(k): float(v) for k, v in dict(engine["fix"] or {}).items()}
    if engine["residuals"] not in ("log", "linear"):
        raise FitError(f"residuals must be 'log' or 'linear', not {engine['residuals']!r}")
    if engine["resample"] not in ("runs", "points", "auto"):
        raise FitError(f"resample must be 'runs', 'points' or 'auto', not {engine['resample']!r}")
    level = float(engine["level"])
    if not 0 < level < 1:
        raise FitError(f"level must be between 0 and 1, not {engine['level']!r}")
    if engine["bootstrap"] is not None and int(engine["bootstrap"]) < 0:
        raise FitError("bootstrap must be a non-negative number of refits")
    from fitting.uncertainty import METHODS

    if engine["intervals"] not in METHODS:
        raise FitError(
            f"intervals must be one of {', '.join(METHODS)}, not {engine['intervals']!r}"
        )
    return engine, {k: v for k, v in options.items() if k not in ENGINE_KEYS}


def make_problem(
    law: Law, data: pd.DataFrame, options: dict[str, Any]
) -> tuple[Problem, dict[str, Any], dict[str, Any]]:
    """Validate the data and options and bind them into an optimisation problem; FitError
    when the data cannot be fitted at all (too few points, absurd losses, one size)."""
    from fitting import constraints

    data = as_frame(data)
    if data.empty:
        raise FitError(f"law {law.name!r}: no data to fit")
    engine, law_opts = split_options(options)
    if engine.get("accounting") is not None:  # N and C counted as asked, then remembered
        from fitting.accounting import Accounting

        accounting = Accounting.coerce(engine["accounting"])
        engine["accounting"] = accounting.to_dict()
        data = accounting.apply(data)
    law = constraints.bound_law(law, law_opts)  # one law per group, when grouped
    law_opts = law.resolve(data, **law_opts)
    engine = constraints.expand(law, law_opts, engine)  # fix / tie over the groups' names
    prep = law.prepare(data, for_fit=True, **law_opts)
    problem = build_problem(
        law,
        prep,
        law_opts,
        loss=engine["loss"],
        delta=engine["delta"],
        fix=engine["fix"],
        log_residuals=engine["residuals"] == "log",
        tie=engine.get("tie"),
    )
    refuse_flat_design(problem, data, law_opts)
    return problem, engine, law_opts


def as_frame(data: Any) -> pd.DataFrame:
    """A pandas frame from pandas, polars or pyarrow data; FitError for anything else."""
    if hasattr(data, "to_pandas") and not isinstance(data, pd.DataFrame):
        data = data.to_pandas()  # polars / pyarrow frames from the store
    if not isinstance(data, pd.DataFrame):
        raise FitError(f"data must be a data frame, not {type(data).__name__}")
    return data


def fit(
    law: str | Law,
    data: pd.DataFrame,
    *,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
    first_result: FirstResult | None = None,
    **options: Any,
) -> FitResult:
    """Fit ``law`` to ``data`` (canonical columns); see the module docstring for options
    and for ``progress``, ``cancel`` and ``first_result``."""
    from fitting.optimize import multistart
    from fitting.uncertainty import choose_method

    t0 = time.perf_counter()
    monitor = resolve(progress, cancel, first_result)
    law = get_law(law)
    data = as_frame(data)
    from fitting.selection import apply_options

    data, options, picked = apply_options(law, data, options)  # split, where, exclude...
    problem, engine, law_opts = make_problem(law, data, options)
    starts = start_grid(problem, engine.get("starts"))
    best = multistart(problem, starts, n_polish=int(engine["n_polish"]), monitor=monitor)
    if not best.converged or not np.isfinite(problem.theta(best.z)).all():
        raise FitError(f"law {law.name!r}: the fit did not converge to finite parameters")
    n_boot = None if engine["bootstrap"] is None else int(engine["bootstrap"])
    method = choose_method(problem, str(engine["intervals"]), n_boot)
    if monitor.first_result is not None and method in ("bootstrap", "profile"):
        quick = _result(problem, best, engine, law_opts, data, picked, monitor, "sandwich")
        quick.duration_s = time.perf_counter() - t0
        monitor.first_result(quick, data)
    result = _result(problem, best, engine, law_opts, data, picked, monitor, method)
    monitor.check()
    if engine.get("extrapolation"):
        factor = float(engine.get("holdout_factor") or 1.5)
        result.checks["extrapolation"] = holdout_refit(
            problem, holdout_factor=factor, n_polish=int(engine["n_polish"])
        )
    result.duration_s = time.perf_counter() - t0
    return result


def _result(
    problem: Problem,
    best: Any,
    engine: dict[str, Any],
    law_opts: dict[str, Any],
    data: pd.DataFrame,
    picked: Any,
    monitor: Monitor,
    method: str,
) -> FitResult:
    """The FitResult of the optimum ``best`` with intervals by ``method``."""
    from fitting.constraints import finish
    from fitting.uncertainty import estimate

    unc = estimate(
        problem,
        best.z,
        level=float(engine["level"]),
        method=method,
        n_boot=None if engine["bootstrap"] is None else int(engine["bootstrap"]),
        seed=int(engine["seed"]),
        by=engine["resample"],
        n_jobs=engine.get("n_jobs"),
        monitor=monitor,
    )
    result = _assemble(problem, best, unc, engine, law_opts)
    finish(result, problem)  # tied parameters report their source's uncertainty
    if picked is not None:
        result.selection = {**picked.selection.to_dict(), "report": picked.report.to_dict()}
    _add_doubts(result, problem, best.z, unc.stderr, data, law_opts)
    return result


def data_hash(prep: Prepared) -> str:
    """SHA-256 of the arrays a fit saw: same data in, same hash out."""
    h = hashlib.sha256()
    for arr in (prep.y, prep.fit_mask, prep.scale):
        h.update(np.ascontiguousarray(arr, dtype=float).tobytes())
    h.update("\x1f".join(map(str, prep.groups)).encode())
    for key in sorted(prep.extra):
        value = np.asarray(prep.extra[key])
        h.update(key.encode())
        h.update(
            np.ascontiguousarray(value).tobytes()
            if value.dtype != object
            else repr(value.tolist()).encode()
        )
    return h.hexdigest()


def code_version() -> str:
    """The installed scalinglab version (the JSON records which code made a fit)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scalinglab")
    except PackageNotFoundError:
        return "0+unknown"


def _add_doubts(
    result: FitResult,
    problem: Problem,
    z: np.ndarray,
    stderr: np.ndarray,
    data: pd.DataFrame,
    law_opts: dict[str, Any],
) -> None:
    """Flag what the fit cannot vouch for in ``checks``; ``converged`` only for a finite
    optimum inside the bounds whose every free parameter the data determine."""
    from fitting.checks import data_range, diagnose

    result.data_range = data_range(problem, data, law_opts)
    doubts = diagnose(problem, z, stderr, data, law_opts)
    excluded = data.attrs.get("excluded_runs")  # set by fitting.data.select_for_law
    if excluded:
        doubts["excluded_runs"] = {str(k): str(v) for k, v in dict(excluded).items()}
    result.checks.update(doubts)
    determined = not doubts.get("at_bound") and not doubts.get("undetermined")
    result.converged = bool(result.converged and determined)


def _assemble(
    problem: Problem, best: Any, unc: Any, engine: dict[str, Any], law_opts: dict[str, Any]
) -> FitResult:
    """The FitResult of a finished fit (``best``: MultiStart, ``unc``: Uncertainty)."""
    from fitting.checks import information_criteria

    theta = problem.theta(best.z)[0]
    names, free = problem.names, problem.free_names
    params = {n: float(theta[i]) for i, n in enumerate(names)}
    stderr = {n: 0.0 for n in names}
    intervals = {n: [params[n], params[n]] for n in names}
    for j, n in enumerate(free):
        stderr[n] = float(unc.stderr[j])
        intervals[n] = [float(unc.lo[j]), float(unc.hi[j])]
    residuals = problem.residuals(best.z)[0]
    aic, bic = information_criteria(residuals, problem.n_free)
    starts = engine.get("starts")
    opts = {k: v for k, v in engine.items() if k != "starts" or isinstance(starts, str)}
    checks: dict[str, Any] = {}
    if unc.samples is not None:  # spread of the refits (the stderr of a bootstrap fit)
        checks["bootstrap_stderr"] = dict(zip(names, unc.boot_sd().tolist(), strict=True))
    if unc.clipped:
        checks["interval_clipped"] = dict(unc.clipped)
    notes = problem.prep.extra.get("notes")
    if notes:  # what the law had to assume (e.g. an interpolated LR): shown with the fit
        checks["notes"] = [str(n) for n in notes]
    return FitResult(
        law=problem.law.name,
        params=params,
        stderr=stderr,
        intervals=intervals,
        objective=float(best.objective),
        n_points=problem.n_points,
        residuals=[float(r) for r in residuals],
        aic=aic,
        bic=bic,
        options={**opts, **law_opts},
        data_hash=data_hash(problem.prep),
        code_version=code_version(),
        free=free,
        log_scale=[n for n, lg in zip(free, problem.log, strict=True) if lg],
        covariance=[[float(c) for c in row] for row in unc.cov],
        bootstrap_samples=None if unc.samples is None else unc.samples.tolist(),
        level=float(engine["level"]),
        n_starts=best.n_starts,
        converged=bool(math.isfinite(best.objective)),
        checks=checks,
        uncertainty=dict(unc.info),
    )
