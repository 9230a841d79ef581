"""FitResult: what a fit learned, how sure it is, and where it came from.

A plain dataclass that serialises to JSON and back exactly (floats are written with
Python's shortest round-trip repr; infinite standard errors of unidentified parameters
are written as the strings "inf" / "-inf" (NaN as "nan") so the JSON stays standard:
`jsonable` does this for any object the CLI prints).

``checks`` carries the doubts about a fit (`fitting.checks.diagnose`): ``at_bound``
(parameter -> "lower" / "upper": on, or within 1% of the log span of, a bound),
``undetermined`` (parameters whose standard error is infinite), ``interval_clipped``
(parameter -> the side where its interval ends on a bound), ``rises_with`` (size inputs
along which the fitted loss rises), ``constant_inputs`` (size inputs with one value on
every point), ``confounded_inputs`` (pairs of size inputs always scaled together, e.g. one
tokens-per-parameter ratio), ``excluded_runs`` (run -> why it was left out). `report()`
and `flags()` show each beside the numbers it concerns.

``uncertainty`` names the method of ``stderr`` and ``intervals`` (`fitting.uncertainty`)
and the scales of the prediction band; ``data_range`` the fitted range of each size input
(and of C = 6ND), against which a prediction is flagged as beyond the data.
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
        "intervals",
    }
)
# A prediction at more than this multiple of the largest fitted size (N, D or C) is
# flagged as beyond the data.
BEYOND_DATA_FACTOR = 10.0


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
    uncertainty: dict[str, Any] = field(default_factory=dict)  # method, df, band scales
    data_range: dict[str, list[float]] = field(default_factory=dict)  # size -> [min, max]

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

    @property
    def method(self) -> str:
        """The method of ``stderr``, ``intervals`` and the confidence band."""
        if self.uncertainty.get("method"):
            return str(self.uncertainty["method"])
        return "bootstrap" if self.bootstrap_samples else "curvature"  # older fits

    def method_text(self) -> str:
        """The method in words, e.g. "bootstrap, 400 resamples of points"."""
        u = self.uncertainty
        if self.method == "bootstrap":
            n = u.get("n_resamples") or len(self.bootstrap_samples or [])
            return f"bootstrap, {n} resamples of {u.get('resample', 'runs or points')}"
        if self.method == "sandwich":
            lag = u.get("hac_lag")
            within = f", serial correlation over {lag} steps" if lag else ""
            return f"robust sandwich{within}, {u.get('quantile', 'Student-t')}"
        if self.method == "profile":
            return "profile likelihood (lmfit)"
        return "curvature, normal quantiles"

    def predict_band(
        self,
        data: pd.DataFrame | dict[str, Any],
        level: float = 0.95,
        kind: str = "confidence",
    ) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) band at ``level``: ``kind="confidence"`` for the law itself (the
        fit's method: bootstrap percentiles, else the delta method on its covariance),
        ``"prediction"`` for a new observation (adds the residual scale and, for curve
        laws, the between-run error)."""
        if not 0 < level < 1:
            raise FitError(f"level must be between 0 and 1, not {level!r}")
        if kind not in ("confidence", "prediction"):
            raise FitError(f"band kind must be 'confidence' or 'prediction', not {kind!r}")
        law, prep = self._prepared(_frame(data))
        if self.bootstrap_samples:
            preds = law.predict(np.asarray(self.bootstrap_samples, dtype=float), prep)
            tail = 50.0 * (1.0 - level)
            lo, hi = np.percentile(preds, tail, axis=0), np.percentile(preds, 100 - tail, axis=0)
            if self.checks.get("undetermined"):  # refits cannot vouch for a flat direction
                free = np.isfinite(self._delta_band(law, prep, level)[0])
                lo, hi = np.where(free, lo, -np.inf), np.where(free, hi, np.inf)
        else:
            lo, hi = self._delta_band(law, prep, level)
        if kind == "confidence":
            return lo, hi
        pred = law.predict(self.theta()[None, :], prep)[0]
        return self._widen(pred, lo, hi, level, np.asarray(prep.scale, dtype=float))

    def bands(
        self, data: pd.DataFrame | dict[str, Any], level: float = 0.95
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Both bands by name: ``{"confidence": (lo, hi), "prediction": (lo, hi)}``."""
        return {k: self.predict_band(data, level, k) for k in ("confidence", "prediction")}

    def prediction_sd(self) -> float:
        """A new observation's error scale (residual and between-run, in quadrature)."""
        u = self.uncertainty
        residual = float(u.get("residual_sd", _rms(self.residuals)))
        between = float(u.get("between_run_sd", 0.0))  # a left-out run's RMS error
        return max(residual, between)  # = hypot(residual, the between-run excess)

    def _widen(
        self, pred: np.ndarray, lo: np.ndarray, hi: np.ndarray, level: float, scale: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The confidence band widened by a new observation's error, in the residuals'
        units (log loss by default), each side separately; for curve laws the error grows
        past the largest fitted step (``beyond_sd_per_log``)."""
        from fitting.uncertainty import quantile

        u = self.uncertainty
        q = quantile(level, u.get("df", max(self.n_points - len(self.free), 1)))
        sd = np.full(pred.shape, self.prediction_sd())
        if u.get("beyond_sd_per_log") and u.get("scale_max"):
            with np.errstate(divide="ignore", invalid="ignore"):
                past = np.maximum(np.log(scale / float(u["scale_max"])), 0.0)
            sd = np.hypot(sd, float(u["beyond_sd_per_log"]) * np.nan_to_num(past))
        extra = q * sd
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if u.get("residuals", self.options.get("residuals", "log")) == "log":
                down = np.where(lo > 0, np.log(pred / lo), np.inf)
                up = np.log(hi / pred)
                p_lo = np.where(np.isneginf(lo), lo, pred * np.exp(-np.hypot(down, extra)))
                return p_lo, pred * np.exp(np.hypot(up, extra))
            return pred - np.hypot(pred - lo, extra), pred + np.hypot(hi - pred, extra)

    def beyond_data(self, data: pd.DataFrame | dict[str, Any]) -> dict[str, float]:
        """Size inputs asked for past ``BEYOND_DATA_FACTOR`` times the largest fitted value:
        column -> the largest asked value as a multiple of the largest fitted one."""
        frame = _frame(data)
        asked: dict[str, np.ndarray] = {}
        for column in self.data_range:
            if column in frame.columns:
                asked[column] = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
        if (
            "flops" in self.data_range
            and "flops" not in asked
            and {"params", "tokens"} <= set(asked)
        ):
            asked["flops"] = 6.0 * asked["params"] * asked["tokens"]
        return beyond(self.data_range, asked)

    def _delta_band(self, law: Any, prep: Any, level: float) -> tuple[np.ndarray, np.ndarray]:
        from fitting.uncertainty import quantile

        theta = self.theta()
        names = list(self.params)
        idx = [names.index(n) for n in self.free]
        pred = law.predict(theta[None, :], prep)[0]
        grad = law.gradient(theta[None, :], prep)[0]
        for dependent, source in (self.options.get("tie") or {}).items():
            grad[:, names.index(source)] += grad[:, names.index(dependent)]
        grad = grad[:, idx]
        grad = grad * np.array([theta[i] if names[i] in self.log_scale else 1.0 for i in idx])
        if self.covariance is None or np.size(self.covariance) != len(idx) ** 2:
            # A fit saved before covariances were kept, or with every parameter fixed.
            raise FitError("this fit carries no covariance of its free parameters, so no band")
        cov = np.asarray(self.covariance, dtype=float).reshape(len(idx), len(idx))
        weak = ~np.isfinite(np.diag(cov))
        var = np.einsum("mf,fg,mg->m", grad, np.where(np.isfinite(cov), cov, 0.0), grad)
        var = np.where((np.abs(grad[:, weak]) > 0).any(axis=1), np.inf, np.maximum(var, 0.0))
        half = quantile(level, self.uncertainty.get("df")) * np.sqrt(var)
        return pred - half, pred + half

    # --- text -----------------------------------------------------------------------------

    def summary(self) -> str:
        """One line: the law and its parameters."""
        body = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        return f"{self.law}: {body} (objective {self.objective:.6g}, {self.n_points} points)"

    def report(self) -> str:
        """Multi-line report: parameters with standard errors and intervals, fit quality."""
        pct = round(100 * self.level)
        lines = [
            f"law {self.law}   {self.n_points} points   objective {self.objective:.8g}",
            f"stderr and intervals: {self.method_text()}",
            f"{'parameter':<16}{'value':>14} {'stderr':>12}   {pct}% interval",
        ]
        for name, value in self.params.items():
            lines.append(
                f"{name:<16}{_fmt(value):>14} {_fmt(self.stderr[name]):>12}   "
                f"{self.interval_text(name)}{self._flag(name)}"
            )
        lines.append(
            f"AIC {self.aic:.2f}   BIC {self.bic:.2f}   residual RMS {_rms(self.residuals):.4g}"
            f"   prediction band adds {self.prediction_sd():.3g} "
            f"({'log loss' if self.uncertainty.get('residuals', 'log') == 'log' else 'loss'})"
        )
        lines += [f"warning: {doubt}" for doubt in self.doubts()]
        ext = self.checks.get("extrapolation")
        if ext:
            lines.append(
                f"extrapolation: {ext['n_heldout']} held-out point(s) at the largest "
                f"scale, mean relative error {ext['mean_rel_error']:.3%}"
            )
        return "\n".join(lines)

    def interval_text(self, name: str) -> str:
        """A parameter's interval as shown: "undetermined" where the data do not fix it."""
        if name in (self.checks.get("undetermined") or []):
            return "undetermined"
        value = self.params[name]
        lo, hi = self.intervals.get(name, [value, value])
        return f"[{_fmt(lo)}, {_fmt(hi)}]"

    def flags(self, name: str) -> list[str]:
        """The marks beside a parameter's numbers (report, dashboard, job history)."""
        tied = (self.options.get("tie") or {}).get(name)
        marks = [] if name in self.free else [f"tied to {tied}" if tied else "fixed"]
        side = (self.checks.get("at_bound") or {}).get(name)
        if side:
            marks.append(f"at its {side} bound")
        if name in (self.checks.get("undetermined") or []):
            marks.append("undetermined")
        clipped = (self.checks.get("interval_clipped") or {}).get(name)
        if clipped:
            marks.append(
                f"interval clipped at the {clipped} bound" + ("s" if clipped == "both" else "")
            )
        return marks

    def flag_names(self) -> list[str]:
        """The machine-readable doubts of the fit (keys of ``checks``), for listings."""
        doubts = [k for k in DOUBT_KEYS if self.checks.get(k)]
        return (["not converged"] if not self.converged else []) + doubts

    def _flag(self, name: str) -> str:
        marks = self.flags(name)
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
        for name, side in (c.get("interval_clipped") or {}).items():
            out.append(f"the interval of {name} is clipped at the law's {side} bound(s)")
        for column, value in (c.get("constant_inputs") or {}).items():
            out.append(f"every point has {column}={_fmt(value)}: the data cannot show its effect")
        for pair in c.get("confounded_inputs") or []:
            a, b = pair["columns"]
            out.append(
                f"{b} and {a} are always scaled together ({b}/{a} = {_fmt(pair['ratio'])} on "
                f"every point): the data cannot tell their effects apart, so their exponents "
                "trade off"
            )
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


DOUBT_KEYS = (
    "at_bound",
    "undetermined",
    "interval_clipped",
    "rises_with",
    "constant_inputs",
    "confounded_inputs",
    "excluded_runs",
)


def beyond(ranges: dict[str, list[float]], asked: dict[str, np.ndarray]) -> dict[str, float]:
    """column -> the largest asked value over the largest fitted one, for the columns past
    ``BEYOND_DATA_FACTOR``."""
    out = {}
    for column, values in asked.items():
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        if column not in ranges or not values.size or not ranges[column][1] > 0:
            continue
        multiple = float(values.max()) / float(ranges[column][1])
        if multiple > BEYOND_DATA_FACTOR:
            out[column] = multiple
    return out


def beyond_text(flags: dict[str, float]) -> str:
    """ "beyond the data: params 30x the largest fitted" (empty without flags)."""
    if not flags:
        return ""
    return "beyond the data: " + ", ".join(
        f"{c} {m:.3g}x the largest fitted" for c, m in flags.items()
    )


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
