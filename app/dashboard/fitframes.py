"""What the Fit page draws of a fit, as plain frames: IsoFLOP slices and the compute-optimal
frontier of a law of N and D, predicted against observed, residuals against each input.

No Streamlit here (tested directly); `fitfigures` turns these into figures and
`fitview.view_kind` decides which a law gets, from what the law declares.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from app.dashboard.fitview import law_of, view_kind
from store.errors import ScalinglabError

# Budgets that are not exact are binned this wide in log10 C; the wider bins only when the
# narrow ones leave fewer than two slices (a design of sizes x token ratios, not IsoFLOPs).
BIN_DECADES = (0.1, 0.25)
MIN_SLICE_POINTS = 4  # a budget drawn as a slice: enough points to show its U
MAX_SLICES = 8
FRONTIER_GRID = 24  # budgets on the frontier (a law without a closed form searches each)
BAND_SAMPLES = 200  # bootstrap refits the frontier band uses at most


def compute(data: pd.DataFrame) -> np.ndarray:
    """C = 6 N D of each row."""
    n = pd.to_numeric(data["params"], errors="coerce").to_numpy(float)
    d = pd.to_numeric(data["tokens"], errors="coerce").to_numpy(float)
    return 6.0 * n * d


def budget_labels(flops: np.ndarray, decades: float = BIN_DECADES[0]) -> tuple[np.ndarray, str]:
    """A budget label per point and how they were made: ``exact`` when the compute values
    repeat (at most one distinct value, to 3 digits, per three points), else bins of
    ``decades`` in log C (placed so clustered budgets are not split)."""
    from fitting.analyses.loglines import log_bins

    rounded = np.array([float(f"{v:.3g}") for v in flops])
    if np.unique(rounded).size * 3 <= flops.size:
        return rounded, "exact"
    return log_bins(np.log(flops), decades * np.log(10.0)).astype(
        float
    ), f"bins of {decades:g} decade"


@dataclass
class Slice:
    """One compute budget: its points and the law's curve L(N, C / 6N) through them."""

    flops: float
    points: pd.DataFrame  # run, params, tokens, loss
    curve: pd.DataFrame  # params, tokens, loss (predicted)
    optimum: tuple[float, float] | None  # the law's (N_opt, loss there), when it has one


def _held_inputs(law: Any, rows: pd.DataFrame, grid: pd.DataFrame) -> list[str]:
    """Inputs besides N and D, held at the budget's median (or first value): their names."""
    held = []
    for col in law.inputs:
        if col in ("params", "tokens") or col not in rows.columns:
            continue
        values = rows[col].dropna()
        if values.empty:
            continue
        numeric = pd.to_numeric(values, errors="coerce")
        grid[col] = float(numeric.median()) if numeric.notna().all() else values.iloc[0]
        held.append(col)
    return held


def isoflop_slices(
    result: Any,
    data: pd.DataFrame,
    *,
    min_points: int = MIN_SLICE_POINTS,
    max_slices: int = MAX_SLICES,
    n_grid: int = 60,
) -> tuple[list[Slice], dict[str, Any]]:
    """The budgets with at least ``min_points`` points (at most ``max_slices``, spread over
    the range of C), each with the fitted curve; and notes (grouping, held inputs)."""
    law = law_of(result)
    rows = data.dropna(subset=["loss"]).copy()
    rows["C"] = compute(rows)
    rows = rows[np.isfinite(rows["C"]) & (rows["C"] > 0)]
    keys = [*(k for k in law.point_keys if k in rows.columns), "budget"]
    for decades in BIN_DECADES:
        labels, grouping = budget_labels(rows["C"].to_numpy(float), decades)
        rows["budget"] = labels
        groups = [g for _, g in rows.groupby(keys, sort=False) if len(g) >= min_points]
        if len(groups) >= 2 or grouping == "exact":
            break
    groups.sort(key=lambda g: float(np.exp(np.log(g["C"]).mean())))
    if len(groups) > max_slices:
        pick = np.unique(np.round(np.linspace(0, len(groups) - 1, max_slices)).astype(int))
        groups = [groups[i] for i in pick]
    slices, held = [], []
    for g in groups:
        c = float(np.exp(np.log(g["C"]).mean()))
        lo, hi = float(g["params"].min()), float(g["params"].max())
        n = np.geomspace(lo / 1.5, hi * 1.5, n_grid)
        grid = pd.DataFrame({"params": n, "tokens": c / (6.0 * n)})
        held = _held_inputs(law, g, grid)
        grid["loss"] = np.asarray(result.predict(grid), dtype=float)
        optimum = None
        if law.supports("compute_optimal"):
            n_opt, _, loss = law.compute_optimum(result.params, np.array([c]))
            optimum = (float(np.asarray(n_opt)[0]), float(np.asarray(loss)[0]))
        cols = [k for k in ("run", "params", "tokens", "loss", *law.point_keys) if k in g]
        slices.append(Slice(c, g[cols].reset_index(drop=True), grid, optimum))
    notes = {"grouping": grouping, "held": held, "n_budgets": int(rows["budget"].nunique())}
    return slices, notes


@dataclass
class Frontier:
    """N_opt(C) on a grid of budgets with its band, and each budget's best observed N."""

    flops: np.ndarray
    n_opt: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    band_method: str  # which uncertainty the band comes from, in words
    observed: pd.DataFrame  # flops, params: the lowest loss of each budget with a U
    max_seen: float  # the largest C fitted


def frontier(
    result: Any, data: pd.DataFrame, *, level: float = 0.95, slices: list[Slice] | None = None
) -> Frontier:
    """The law's compute-optimal N over the data's budgets and 10x past the largest, with
    the band from the fit's own uncertainty (bootstrap refits when it has them, at most
    `BAND_SAMPLES` of them, else the delta method on its covariance)."""
    from fitting.analyses.common import interval, method_text

    law = law_of(result)
    c_data = compute(data.dropna(subset=["loss"]))
    c_data = c_data[np.isfinite(c_data) & (c_data > 0)]
    c = np.geomspace(float(c_data.min()), 10.0 * float(c_data.max()), FRONTIER_GRID)
    n_opt = np.asarray(law.compute_optimum(result.params, c)[0], dtype=float)
    banded = result
    if result.bootstrap_samples and len(result.bootstrap_samples) > BAND_SAMPLES:
        every = -(-len(result.bootstrap_samples) // BAND_SAMPLES)
        banded = replace(result, bootstrap_samples=result.bootstrap_samples[::every])
    try:
        with np.errstate(all="ignore"):
            lo, hi = interval(
                banded, lambda p: np.asarray(law.compute_optimum(p, c)[0], float), level
            )
        how = method_text(banded)
        if banded is not result:
            how += f" (every {every}th refit: {len(banded.bootstrap_samples)} of them)"
    except (ScalinglabError, ValueError):  # an older fit without a covariance: no band
        lo = hi = np.full_like(n_opt, np.nan)
        how = "no band: the fit carries neither refits nor a covariance"
    observed = []
    for s in slices or []:
        best = s.points.loc[s.points["loss"].idxmin()]
        inside = s.points["params"].min() < best["params"] < s.points["params"].max()
        if inside:  # a minimum at the edge of a budget is not a measured optimum
            observed.append({"flops": s.flops, "params": float(best["params"])})
    return Frontier(
        c,
        n_opt,
        np.asarray(lo, float),
        np.asarray(hi, float),
        how,
        pd.DataFrame(observed, columns=["flops", "params"]),
        float(c_data.max()),
    )


def predicted_observed(
    result: Any, data: pd.DataFrame, held_out: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per fit point: run, observed and predicted loss, held out or not."""
    rows = data.dropna(subset=["loss"])
    mask = np.zeros(len(data), bool) if held_out is None else np.asarray(held_out, bool)
    keep = data["loss"].notna().to_numpy()
    return pd.DataFrame(
        {
            "run": rows["run"].astype(str).to_numpy() if "run" in rows else np.arange(len(rows)),
            "observed": rows["loss"].to_numpy(float),
            "predicted": np.asarray(result.predict(rows), dtype=float),
            "held_out": mask[keep],
        }
    )


def residual_inputs(result: Any, data: pd.DataFrame) -> list[str]:
    """The inputs residuals are drawn against: the law's numeric inputs (its ``x``
    choice for a one-size law), and C = 6ND for a law of N and D."""
    law = law_of(result)
    if law is None:
        return [c for c in ("params", "tokens", "step") if c in data.columns][:1]
    cols = list(law.size_inputs(result.options)) if law.x_columns else list(law.inputs)
    if view_kind(law) == "isoflop":
        cols.append("flops")
    out = []
    for col in dict.fromkeys(cols):
        if col == "run" or col not in data.columns:
            continue
        if pd.to_numeric(data[col], errors="coerce").notna().any():
            out.append(col)
    return out


def residual_frame(result: Any, data: pd.DataFrame) -> pd.DataFrame:
    """The fit rows with their residual (the fit's own, log observed - log predicted by
    default) beside each input of `residual_inputs`; C is 6ND for a law of N and D."""
    rows = data.dropna(subset=["loss"]).reset_index(drop=True)
    res = np.asarray(result.residuals, dtype=float)
    rows = rows.iloc[: len(res)].copy()
    law = law_of(result)
    if view_kind(law) == "isoflop" and {"params", "tokens"} <= set(rows.columns):
        rows["flops"] = compute(rows)  # C = 6ND, whatever FLOPs the file logged
    inputs = residual_inputs(result, rows)
    out = rows[[c for c in ("run", *inputs) if c in rows.columns]].copy()
    out["residual"] = res[: len(out)]
    return out


def curve_frame(result: Any, data: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Every row of a loss-curve fit (run, step, observed loss) with the prediction and
    both bands (``lo``/``hi`` confidence, ``plo``/``phi`` prediction; NaN where the fit
    cannot give one)."""
    from app.dashboard.fitview import bands

    out = data[["run", "step", "loss"]].copy()
    out["run"] = out["run"].astype(str)
    out["predicted"] = np.asarray(result.predict(data), dtype=float)
    both = bands(result, data, level)
    for kind, (lo, hi) in (("confidence", ("lo", "hi")), ("prediction", ("plo", "phi"))):
        band = both[kind]
        out[lo], out[hi] = band if band is not None else (np.nan, np.nan)
    return out
