"""What Approaches 1 and 2 share: the points they build, and N_opt ∝ C^a, D_opt ∝ C^b
fitted through them with intervals.

Intervals: percentiles of the approach's own bootstrap (``replicates``), widened to the
ordinary least-squares t interval of the line where the approach's points are independent
(``with_t``): resampling within budgets sees the noise of each budget's optimum but not the
scatter of the optima about the line (a parabola's bias, budget-to-budget variation), which
the line's residuals do. Both are reported as one interval; ``interval_method`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fitting.accounting import Accounting, per_token_model
from fitting.errors import FitError

Replicate = tuple[np.ndarray, np.ndarray, np.ndarray]  # (log C, log N_opt, log D_opt)


def allocation_frame(frame: pd.DataFrame, accounting: Accounting) -> pd.DataFrame:
    """Rows with positive ``params``, ``tokens``, ``flops`` and a finite ``loss``, counted
    by ``accounting``; eval rows when the frame has any (the losses one compares)."""
    from fitting.data import fill_sizes

    if "loss" not in frame.columns:
        raise FitError("an allocation needs a loss column", column="loss")
    out = accounting.apply(fill_sizes(frame))
    if "split" in out.columns:
        is_eval = out["split"].astype(str).str.startswith("eval")
        if is_eval.any():
            out = out[is_eval]
    for column in ("params", "tokens", "flops", "loss"):
        if column not in out.columns:
            raise FitError(
                f"an allocation needs a {column} column (or what gives it)", column=column
            )
        out[column] = pd.to_numeric(out[column], errors="coerce")
    ok = np.isfinite(out["loss"]) & (out[["params", "tokens", "flops"]] > 0).all(axis=1)
    out = out[ok].copy()
    if out.empty:
        raise FitError("no row has params, tokens (or flops) and a loss")
    if "run" not in out.columns:
        out["run"] = np.arange(len(out)).astype(str)
    out["run"] = out["run"].astype(str)
    return out.reset_index(drop=True)


def final_points(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its last (largest-compute) row."""
    order = ["run", "step"] if "step" in frame.columns else ["run", "flops"]
    return frame.sort_values(order, kind="stable").groupby("run", sort=False).tail(1)


def log_bins(log_c: np.ndarray, width: float) -> np.ndarray:
    """Bin index of each point in bins of ``width`` (natural log units) of log C; of ten
    offsets, the one whose bins hold the points most unevenly (largest sum of squared
    counts), so budgets that cluster are not split by an edge."""
    if width <= 0:
        raise FitError(f"bin width must be positive, not {width!r}")
    best, best_score = None, -1.0
    for offset in np.linspace(0.0, width, 10, endpoint=False):
        idx = np.floor((log_c - offset) / width).astype(np.int64)
        score = float(np.sum(np.unique(idx, return_counts=True)[1] ** 2))
        if score > best_score:
            best, best_score = idx, score
    assert best is not None
    return best


@dataclass
class Line:
    """y = intercept + slope x by least squares, and what its t intervals need."""

    slope: float
    intercept: float
    n: int
    xbar: float
    sxx: float
    resid_sd: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray) -> Line:
        xbar = float(np.mean(x))
        sxx = float(np.sum((x - xbar) ** 2))
        slope = float(np.sum((x - xbar) * (y - np.mean(y))) / sxx) if sxx > 0 else np.nan
        intercept = float(np.mean(y) - slope * xbar)
        resid = y - (intercept + slope * x)
        sd = float(np.sqrt(np.sum(resid**2) / (x.size - 2))) if x.size > 2 else np.inf
        return cls(slope, intercept, int(x.size), xbar, sxx, sd)

    def at(self, x: np.ndarray) -> np.ndarray:
        return self.intercept + self.slope * x

    def slope_t(self, level: float) -> tuple[float, float]:
        half = _t(level, self.n) * self.resid_sd / np.sqrt(self.sxx)
        return self.slope - half, self.slope + half

    def mean_t(self, x: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        se = self.resid_sd * np.sqrt(1.0 / self.n + (x - self.xbar) ** 2 / self.sxx)
        half = _t(level, self.n) * se
        return self.at(x) - half, self.at(x) + half


def _t(level: float, n: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, n - 2)) if n > 2 else np.inf


def answer(
    log_c: np.ndarray,
    log_n: np.ndarray,
    log_d: np.ndarray,
    replicates: list[Replicate],
    budgets: np.ndarray,
    fpt: Any,
    level: float,
    with_t: bool,
) -> dict[str, Any]:
    """a, b and N_opt, D_opt, tokens per parameter at ``budgets``, each with an interval."""
    if np.unique(log_c).size < 2:
        raise FitError("the compute-optimal line needs optima at two or more compute values")
    line_n, line_d = Line.fit(log_c, log_n), Line.fit(log_c, log_d)
    tail = 50.0 * (1.0 - level)
    lb = np.log(budgets)
    boot_a, boot_b, boot_n = [], [], []
    for rc, rn, rd in replicates:
        if np.unique(rc).size < 2:
            continue  # this resample kept fewer than two budgets: no line
        ln, ld = Line.fit(rc, rn), Line.fit(rc, rd)
        boot_a.append(ln.slope)
        boot_b.append(ld.slope)
        boot_n.append(ln.at(lb))
    used = len(boot_a)

    def bounds(values: list[Any], centre: Any, t_bounds: Any) -> tuple[np.ndarray, np.ndarray]:
        if values:
            arr = np.asarray(values, dtype=float)
            lo = np.percentile(arr, tail, axis=0)
            hi = np.percentile(arr, 100 - tail, axis=0)
        else:
            lo = hi = np.asarray(centre, dtype=float)
        if with_t:
            lo, hi = np.minimum(lo, t_bounds[0]), np.maximum(hi, t_bounds[1])
        return np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)

    a_lo, a_hi = bounds(boot_a, line_n.slope, line_n.slope_t(level))
    b_lo, b_hi = bounds(boot_b, line_d.slope, line_d.slope_t(level))
    n_lo, n_hi = bounds(boot_n, line_n.at(lb), line_n.mean_t(lb, level))
    n_opt = np.exp(line_n.at(lb))
    n_low, n_high = np.exp(n_lo), np.exp(n_hi)

    def tokens(c: float, n: float) -> float:
        return float(c / fpt(np.array([n]))[0])

    at = []
    for i, c in enumerate(budgets):  # D and D/N fall as N grows at a fixed budget
        d = tokens(c, n_opt[i])
        d_lo, d_hi = tokens(c, n_high[i]), tokens(c, n_low[i])
        at.append(
            {
                "flops": float(c),
                "N_opt": float(n_opt[i]),
                "N_opt_interval": [float(n_low[i]), float(n_high[i])],
                "D_opt": float(d),
                "D_opt_interval": [float(d_lo), float(d_hi)],
                "tokens_per_param": float(d / n_opt[i]),
                "tokens_per_param_interval": [float(d_lo / n_high[i]), float(d_hi / n_low[i])],
            }
        )
    method = "bootstrap percentiles" + (" widened to the line's t interval" if with_t else "")
    return {
        "a": line_n.slope,
        "a_interval": [float(a_lo), float(a_hi)],
        "b": line_d.slope,
        "b_interval": [float(b_lo), float(b_hi)],
        "at_budgets": at,
        "n_optima": int(log_c.size),
        "bootstrap_used": used,
        "interval_method": method,
        "level": level,
    }


def tokens_model(frame: pd.DataFrame, accounting: Accounting) -> Any:
    """FLOPs per token as a function of N for this selection (`per_token_model`)."""
    return per_token_model(frame, accounting)
