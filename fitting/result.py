"""FitResult: what a fit learned, how sure it is, and where it came from.

A plain dataclass that serialises to JSON and back exactly (floats are written with
Python's shortest round-trip repr; infinite standard errors of unidentified parameters
are written as the strings "inf" / "-inf" (NaN as "nan") so the JSON stays standard:
`jsonable` does this for any object the CLI prints).

``checks`` carries the doubts about a fit (`fitting.checks.diagnose`): ``at_bound``
(parameter -> "lower" / "upper"), ``undetermined`` (parameters whose standard error is
infinite), ``rises_with`` (size inputs along which the fitted loss rises),
``constant_inputs`` (size inputs with one value on every point), ``excluded_runs`` (run ->
why it was left out). `report()` shows each beside the numbers it concerns.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from fitting.errors import FitError

# Option keys the engine consumes; every other option belongs to the law.
ENGINE_KEYS = frozenset(
    {
        "loss",
        "delta",
        "fix",
        "bootstrap",
        "seed",
        "n_jobs",
        "resample",
        "level",
        "n_polish",
        "starts",
        "max_iter",
        "residuals",
        "extrapolation",
        "holdout_factor",
        "tie",
        "accounting",
    }
)


@dataclass
class FitResult:
    """One fitted law. ``params``/``stderr``/``intervals`` are keyed by parameter name."""

    law: str
    params: dict[str, float]
    stderr: dict[str, float]
    intervals: dict[str, list[float]]
    objective: float
    n_points: int
    residuals: list[float]  # residuals on the fit rows (log loss by default), in row order
    aic: float
    bic: float
    options: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] | None = None
    data_hash: str = ""
    code_version: str = ""
    free: list[str] = field(default_factory=list)  # optimised parameters, covariance order
    log_scale: list[str] = field(default_factory=list)  # optimised as log(value)
    covariance: list[list[float]] = field(default_factory=list)  # optimiser space
    bootstrap_samples: list[list[float]] | None = None  # natural units, all parameters
    level: float = 0.95
    n_starts: int = 0
    converged: bool = True
    checks: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    # --- prediction ---------------------------------------------------------------------

    @property
    def law_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k not in ENGINE_KEYS}

    def theta(self) -> np.ndarray:
        """Natural-unit parameter vector in the law's order."""
        return np.array([self.params[p] for p in self.params], dtype=float)

    def _prepared(self, data: pd.DataFrame) -> Any:
        from fitting.laws import LAWS

        if self.law not in LAWS:
            raise FitError(f"unknown law {self.law!r} in this fit")
        from fitting.constraints import bound_law

        law = bound_law(LAWS[self.law], self.law_options)  # a grouped fit: its GroupedLaw
        return law, law.prepare(data, for_fit=False, **self.law_options)

    def predict(self, data: pd.DataFrame | dict[str, Any]) -> np.ndarray:
        """One predicted loss per row of ``data`` (same columns as the fit's input)."""
        law, prep = self._prepared(_frame(data))
        return law.predict(self.theta()[None, :], prep)[0]

    def predict_band(
        self, data: pd.DataFrame | dict[str, Any], level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) band for the law's prediction: bootstrap percentiles when the fit
        has bootstrap samples, else the delta method on the curvature covariance."""
        if not 0 < level < 1:
            raise FitError(f"level must be between 0 and 1, not {level!r}")
        law, prep = self._prepared(_frame(data))
        if self.bootstrap_samples:
            preds = law.predict(np.asarray(self.bootstrap_samples, dtype=float), prep)
            tail = 50.0 * (1.0 - level)
            return np.percentile(preds, tail, axis=0), np.percentile(preds, 100 - tail, axis=0)
        return self._delta_band(law, prep, level)

    def _delta_band(self, law: Any, prep: Any, level: float) -> tuple[np.ndarray, np.ndarray]:
        from scipy.stats import norm

        theta = self.theta()
        names = list(self.params)
        idx = [names.index(n) for n in self.free]
        pred = law.predict(theta[None, :], prep)[0]
        grad = law.gradient(theta[None, :], prep)[0]
        for dependent, source in (self.options.get("tie") or {}).items():
            grad[:, names.index(source)] += grad[:, names.index(dependent)]
        grad = grad[:, idx]
        grad = grad * np.array([theta[i] if names[i] in self.log_scale else 1.0 for i in idx])
        cov = np.asarray(self.covariance, dtype=float).reshape(len(idx), len(idx))
        weak = ~np.isfinite(np.diag(cov))
        var = np.einsum("mf,fg,mg->m", grad, np.where(np.isfinite(cov), cov, 0.0), grad)
        var = np.where((np.abs(grad[:, weak]) > 0).any(axis=1), np.inf, np.maximum(var, 0.0))
        half = float(norm.ppf(0.5 + level / 2)) * np.sqrt(var)
        return pred - half, pred + half

    # --- text -----------------------------------------------------------------------------

    def summary(self) -> str:
        """One line: the law and its parameters."""
        body = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        return f"{self.law}: {body} (objective {self.objective:.6g}, {self.n_points} points)"

    def report(self) -> str:
        """Multi-line report: parameters with standard errors and intervals, fit quality."""
        pct = round(100 * self.level)
        how = "bootstrap" if self.bootstrap_samples else "curvature"
        lines = [
            f"law {self.law}   {self.n_points} points   objective {self.objective:.8g}",
            f"{'parameter':<16}{'value':>14} {'stderr':>12}   {pct}% interval ({how})",
        ]
        for name, value in self.params.items():
            lo, hi = self.intervals.get(name, [value, value])
            lines.append(
                f"{name:<16}{_fmt(value):>14} {_fmt(self.stderr[name]):>12}   "
                f"[{_fmt(lo)}, {_fmt(hi)}]{self._flag(name)}"
            )
        lines.append(
            f"AIC {self.aic:.2f}   BIC {self.bic:.2f}   residual RMS {_rms(self.residuals):.4g}"
        )
        lines += [f"warning: {doubt}" for doubt in self.doubts()]
        ext = self.checks.get("extrapolation")
        if ext:
            lines.append(
                f"extrapolation: {ext['n_heldout']} held-out point(s) at the largest "
                f"scale, mean relative error {ext['mean_rel_error']:.3%}"
            )
        return "\n".join(lines)

    def _flag(self, name: str) -> str:
        """The marks shown beside a parameter's numbers in `report()`."""
        tied = (self.options.get("tie") or {}).get(name)
        marks = [] if name in self.free else [f"tied to {tied}" if tied else "fixed"]
        side = (self.checks.get("at_bound") or {}).get(name)
        if side:
            marks.append(f"at its {side} bound")
        if name in (self.checks.get("undetermined") or []):
            marks.append("undetermined")
        return f"   ({', '.join(marks)})" if marks else ""

    def doubts(self) -> list[str]:
        """One sentence per doubt in ``checks`` (empty for a clean fit)."""
        c = self.checks
        out = []
        if not self.converged:
            out.append("the fit did not converge to a determined optimum inside the bounds")
        if c.get("at_bound"):
            named = ", ".join(f"{n} ({side})" for n, side in c["at_bound"].items())
            out.append(f"parameter(s) at a bound of the law: {named}")
        if c.get("undetermined"):
            out.append(
                "the data do not determine "
                f"{', '.join(c['undetermined'])} (infinite standard error)"
            )
        for column, value in (c.get("constant_inputs") or {}).items():
            out.append(f"every point has {column}={_fmt(value)}: the data cannot show its effect")
        for column in c.get("rises_with") or []:
            out.append(f"the fitted loss rises with {column}")
        for run, why in (c.get("excluded_runs") or {}).items():
            out.append(f"run {run!r} left out: {why}")
        return out

    # --- JSON -----------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(jsonable(asdict(self)), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> FitResult:
        raw = json.loads(text) if isinstance(text, str) else text
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in _decode(raw).items() if k in known})
        except TypeError as err:
            raise FitError(f"not a fit result: {err}") from None


def _frame(data: pd.DataFrame | dict[str, Any]) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "to_pandas"):
        return data.to_pandas()  # polars / pyarrow
    return pd.DataFrame({k: np.atleast_1d(v) for k, v in data.items()})


def _fmt(v: float) -> str:
    return f"{v:.6g}"  # inf, -inf and nan print as themselves


def _rms(r: list[float]) -> float:
    return float(np.sqrt(np.mean(np.square(r)))) if r else 0.0


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy values made plain and non-finite floats written as the strings
    "inf", "-inf", "nan", so ``json.dumps(..., allow_nan=False)`` gives standard JSON."""
    if isinstance(obj, float | np.floating):
        v = float(obj)
        return v if math.isfinite(v) else ("inf" if v > 0 else "-inf" if v < 0 else "nan")
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, str) and obj in ("inf", "-inf", "nan"):
        return float(obj)
    if isinstance(obj, dict):
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj
