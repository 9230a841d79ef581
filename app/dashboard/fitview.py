"""What the Fit, Predict and Jobs pages show about a FitResult, as plain frames and figures.

No Streamlit here: these are tested directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.dashboard import figures
from fitting.result import beyond_text
from store.errors import ScalinglabError

if TYPE_CHECKING:
    from fitting.laws import Law

EXTRAPOLATE_FACTOR = 10.0


def law_of(result: Any) -> Law | None:
    """The registered law of a fit (None for a law this build does not know)."""
    from fitting.laws import LAWS

    return LAWS.get(result.law)


def view_kind(law: Law | None) -> str:
    """How the Fit page draws a law, from what the law declares (the one place that
    decides): ``"curves"`` for a loss-curve law, ``"isoflop"`` for a law of both N and D
    (IsoFLOP slices, predicted against observed, and the compute-optimal frontier when it
    has one), ``"size"`` for the rest (the loss against its size input)."""
    if law is None:
        return "size"
    if law.kind == "curves":
        return "curves"
    if {"params", "tokens"} <= set(law.sizes):
        return "isoflop"
    return "size"


def has_frontier(law: Law | None) -> bool:
    """Whether the page draws N_opt(C): a law of N and D with the compute-optimal hook."""
    return view_kind(law) == "isoflop" and law is not None and law.supports("compute_optimal")


def is_curve_fit(result: Any) -> bool:
    """Whether the fit's data are whole loss curves (x = step), not one point per model."""
    law = law_of(result)
    return law is not None and law.kind == "curves"


def main_x(result: Any, data: pd.DataFrame) -> str:
    """The size column a law's fit is best drawn against."""
    x = (getattr(result, "options", None) or {}).get("x")
    if x:
        return str(x)
    if is_curve_fit(result):
        return "step"
    for col in ("params", "encoder_params", "tokens", "flops", "step"):
        if col in data.columns and data[col].notna().any():
            return col
    return "step"


def params_table(result: Any) -> pd.DataFrame:
    """One row per parameter: value, standard error, interval (all from the fit's method,
    `method_caption`) and the flags beside them; an undetermined parameter's interval is
    left empty, its flag says why."""
    rows = []
    pct = f"{100 * float(getattr(result, 'level', 0.95)):g}%"
    undetermined = set((result.checks or {}).get("undetermined") or [])
    for name, value in result.params.items():
        lo, hi = (result.intervals or {}).get(name, (np.nan, np.nan))
        if name in undetermined:
            lo = hi = np.nan
        rows.append(
            {
                "parameter": name,
                "value": float(value),
                "stderr": float((result.stderr or {}).get(name, np.nan)),
                f"lower {pct}": float(lo),
                f"upper {pct}": float(hi),
                "flags": ", ".join(flags_of(result, name)),
            }
        )
    return pd.DataFrame(rows)


def flags_of(result: Any, name: str) -> list[str]:
    """The marks beside a parameter (at a bound, undetermined, interval clipped...)."""
    return list(result.flags(name)) if hasattr(result, "flags") else []


def method_caption(result: Any) -> str:
    """How the fit's standard errors, intervals and bands were computed, in words."""
    text = result.method_text() if hasattr(result, "method_text") else "curvature"
    return (
        f"Standard errors and intervals: {text}. Bands: the confidence band is the law's; "
        "the prediction band is where a new observation should fall (it adds the residual "
        "scale and, for loss-curve laws, the error on a run left out of the fit)."
    )


def bands(result: Any, grid: pd.DataFrame, level: float = 0.95) -> dict[str, Any]:
    """Both bands on a grid, each None where the fit cannot give it."""
    out: dict[str, Any] = {"confidence": None, "prediction": None}
    for kind in out:
        try:
            lo, hi = result.predict_band(grid, level=level, kind=kind)
            out[kind] = (np.asarray(lo, dtype=float), np.asarray(hi, dtype=float))
        except ScalinglabError:  # an older fit without what the band needs still draws
            pass
    return out


def irreducible(result: Any) -> float | None:
    """The fitted irreducible loss (the law's L_inf / E / L0) when the law has one."""
    law = law_of(result)
    name = law.irreducible if law is not None else None
    return float(result.params[name]) if name in result.params else None


def true_entropy(data: pd.DataFrame) -> float | None:
    """The source's exact entropy rate when every run in the data declares the same one."""
    if "entropy" not in data.columns:
        return None
    values = pd.to_numeric(data["entropy"], errors="coerce").dropna().unique()
    return float(np.median(values)) if len(values) else None


def extrapolation_grid(
    data: pd.DataFrame, x: str, factor: float = EXTRAPOLATE_FACTOR, n: int = 120
) -> pd.DataFrame:
    """Rows from the smallest x to `factor` times the largest, other inputs scaled along.

    Other size columns follow x at their median ratio to it in the data (e.g. a fixed
    tokens-per-parameter ratio), so laws in several variables draw a sensible curve.
    """
    xs = pd.to_numeric(data[x], errors="coerce")
    xs = xs[xs > 0]
    grid = np.geomspace(float(xs.min()), float(xs.max()) * factor, n)
    out = pd.DataFrame({x: grid})
    for col in (
        "params",
        "params_non_embedding",
        "tokens",
        "flops",
        "encoder_params",
        "decoder_params",
    ):
        if col == x or col not in data.columns:
            continue
        vals = pd.to_numeric(data[col], errors="coerce")
        ratio = (vals / pd.to_numeric(data[x], errors="coerce")).replace([np.inf, -np.inf], np.nan)
        if ratio.notna().any():
            out[col] = grid * float(ratio.median())
    for col in ("family", "sampling_ratio", "run"):
        if col in data.columns and data[col].notna().any():
            out[col] = data[col].dropna().iloc[0]
    return out


def held_out_mask(
    result: Any, data: pd.DataFrame, test: dict[str, Any] | None = None
) -> np.ndarray | None:
    """Rows an extrapolation test held out (at the largest scale), when one ran."""
    test = test or (getattr(result, "checks", None) or {}).get("extrapolation")
    if not test:
        return None
    x = pd.to_numeric(data[main_x(result, data)], errors="coerce").to_numpy(float)
    return x >= float(test["scale_threshold"])


def extrapolation_report(result: Any, data: pd.DataFrame) -> dict[str, Any]:
    """Refit without the largest-scale rows (the fit's own options) and score them."""
    from fitting import analyses

    options = {
        k: v
        for k, v in (result.options or {}).items()
        if k not in ("bootstrap", "extrapolation", "n_jobs", "seed", "resample")
    }
    return analyses.extrapolation_test(result.law, data, **options)


def point_fit_figure(
    result: Any, data: pd.DataFrame, *, held_out: np.ndarray | None = None, level: float = 0.95
) -> go.Figure:
    """Data, fitted curve and extrapolation band for a point law (log-log)."""
    x = main_x(result, data)
    grid = extrapolation_grid(data, x)
    pred = np.asarray(result.predict(grid), dtype=float)
    both = bands(result, grid, level)
    pct = f"{100 * level:g}%"
    return figures.fit_figure(
        pd.to_numeric(data[x]).to_numpy(float),
        data["loss"].to_numpy(float),
        grid[x].to_numpy(float),
        pred,
        both["confidence"],
        band_name=f"{pct} confidence band (the law)",
        prediction_band=both["prediction"],
        prediction_name=f"{pct} prediction band (a new run)",
        x_name=x,
        labels=data["run"].astype(str).tolist() if "run" in data else None,
        held_out=held_out,
        l_inf=irreducible(result),
        entropy=true_entropy(data),
        x_max_seen=float(pd.to_numeric(data[x]).max()),
    )


def curve_fit_figure(result: Any, data: pd.DataFrame) -> go.Figure:
    """Observed loss curves with the law's predicted curve for each run."""
    observed = data.dropna(subset=["loss"])[["run", "split", "step", "loss"]].copy()
    predicted = data[["run", "step"]].copy()
    predicted["loss"] = np.asarray(result.predict(data), dtype=float)
    predicted["run"] = predicted["run"].astype(str) + " (fit)"
    predicted["split"] = "fit"
    frame = pd.concat([observed, predicted], ignore_index=True)
    return figures.curves_figure(frame, x="step", log_x=False, log_y=False, smoothing=0.0)


def residuals_figure(result: Any, data: pd.DataFrame) -> go.Figure:
    x = main_x(result, data)
    fit_rows = data.dropna(subset=["loss"])
    res = np.asarray(result.residuals, dtype=float)
    xs = pd.to_numeric(fit_rows[x]).to_numpy(float)
    if len(res) != len(xs):  # residuals may be reported on all rows
        xs = pd.to_numeric(data[x]).to_numpy(float)[: len(res)]
    return figures.residuals_figure(xs, res, x_name=x)


def kl_frame(result: Any, data: pd.DataFrame) -> pd.DataFrame | None:
    """Loss at each data size split into irreducible (L_inf) and reducible (KL) parts."""
    l_inf = irreducible(result)
    if l_inf is None or is_curve_fit(result):  # a curve's rows are not sizes
        return None
    x = main_x(result, data)
    rows = data.drop_duplicates(subset=[x]).sort_values(x)
    pred = np.asarray(result.predict(rows), dtype=float)
    return pd.DataFrame(
        {
            x: rows[x].to_numpy(float),
            "irreducible": l_inf,
            "reducible": np.maximum(pred - l_inf, 0.0),
            "predicted": pred,
        }
    )


def history_frame(fits: pd.DataFrame, at: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per saved fit of a job: its time, parameters with intervals, and (when `at`
    holds one row of inputs) the prediction there with its band."""
    from fitting import FitResult

    rows = []
    for rec in fits.sort_values("created_at").to_dict("records"):
        result = FitResult.from_json(rec["result_json"])
        row: dict[str, Any] = {
            "fit_id": rec["id"],
            "created_at": rec["created_at"],
            "n_points": getattr(result, "n_points", None),
            "method": result.method,
            "flags": ", ".join(result.flag_names()),
        }
        for name, value in result.params.items():
            lo, hi = (result.intervals or {}).get(name, (np.nan, np.nan))
            row.update({name: value, f"{name} lo": lo, f"{name} hi": hi})
            row[f"{name} flags"] = ", ".join(flags_of(result, name))
        if at is not None:
            try:
                row["prediction"] = float(np.asarray(result.predict(at))[0])
                both = result.bands(at)
                lo, hi = both["confidence"]
                row["prediction lo"], row["prediction hi"] = float(lo[0]), float(hi[0])
                lo, hi = both["prediction"]
                row["prediction band lo"], row["prediction band hi"] = float(lo[0]), float(hi[0])
                row["prediction flags"] = beyond_text(result.beyond_data(at))
            except ScalinglabError:  # an older fit may lack what the band needs
                pass
        rows.append(row)
    return pd.DataFrame(rows)
