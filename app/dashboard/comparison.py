"""What the Compare page shows of several fits (and allocation approaches): curves with
their bands on shared axes, and one table of their answers at chosen N, D and C.

No Streamlit here: these are tested directly.

Axes: a law of one size input is drawn as loss against that input; a law of N and D with a
compute-optimal allocation as loss along its frontier against C, and N_opt(C) on the
frontier figure, where Hoffmann et al.'s Approaches 1 and 2 (an allocation report) join it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.dashboard import figures
from store.errors import ScalinglabError

# The what-if inputs by the names the page asks for them.
SYMBOL = {"params": "N", "tokens": "D", "flops": "C"}
DEFAULT_AT = {"N": 1e9, "D": 2e10, "C": 1e21}
GRID_POINTS = 48
EXTEND = 10.0  # curves run to 10x the largest fitted size, where the beyond-data flag starts


@dataclass(frozen=True)
class Compared:
    """One saved fit on the page; `memo` keeps its curves (a saved fit never changes, so
    a page may keep one Compared per fit across reruns)."""

    fit_id: int
    label: str
    result: Any
    memo: dict[str, pd.DataFrame] = field(default_factory=dict, compare=False, repr=False)


def fit_label(record: dict[str, Any]) -> str:
    """ "fit 3: chinchilla on chin" (project names are user text: callers escape)."""
    return f"fit {record['id']}: {record['law']} on {record['project']}"


def size_inputs(result: Any) -> tuple[str, ...]:
    from app.dashboard.predictions import size_inputs as inputs

    return tuple(inputs(result))


def has_frontier(result: Any) -> bool:
    from fitting.laws import supports

    return supports(result.law, "compute_optimal")


def loss_axis(result: Any) -> str | None:
    """The x of the loss figure this fit joins (None: no shared axis, e.g. a curve law)."""
    from app.dashboard import fitview

    if fitview.is_curve_fit(result):
        return None
    inputs = size_inputs(result)
    if len(inputs) == 1:
        return inputs[0]
    return "flops" if has_frontier(result) else None


def _grid(result: Any, column: str, n: int = GRID_POINTS) -> np.ndarray:
    low, high = (result.data_range or {}).get(column) or (None, None)
    if not (low and high and 0 < low < high):
        low, high = {"flops": (1e18, 1e22)}.get(column, (1e6, 1e10))
    return np.geomspace(float(low), float(high) * EXTEND, n)


def loss_curve(item: Compared, x: str, level: float = 0.95) -> pd.DataFrame:
    """`x, loss, lo, hi`: the law's loss (along the compute-optimal frontier when `x` is
    C for a law of N and D) with its confidence band."""
    result = item.result
    if x not in size_inputs(result):
        curve = frontier_curve(item, level)
        return curve.rename(columns={"loss_lo": "lo", "loss_hi": "hi"})
    key = f"loss-{x}-{level}"
    if key not in item.memo:
        grid = _grid(result, x)
        frame = pd.DataFrame({x: grid})
        loss = np.asarray(result.predict(frame), dtype=float)
        try:
            lo, hi = result.predict_band(frame, level=level, kind="confidence")
        except ScalinglabError:
            lo = hi = np.full_like(loss, np.nan)
        item.memo[key] = pd.DataFrame({x: grid, "loss": loss, "lo": lo, "hi": hi})
    return item.memo[key]


def frontier_curve(item: Compared, level: float = 0.95) -> pd.DataFrame:
    """`flops, N_opt, N_opt_lo, N_opt_hi, loss, loss_lo, loss_hi` over C: the
    compute-optimal model size and the loss there, with their intervals."""
    from fitting import analyses

    key = f"frontier-{level}"
    if key not in item.memo:
        grid = _grid(item.result, "flops")
        out = analyses.compute_optimal(item.result, grid, level=level)
        names = ("N_opt", "N_opt_lo", "N_opt_hi", "loss", "loss_lo", "loss_hi")
        item.memo[key] = pd.DataFrame({"flops": grid, **{k: out[k] for k in names}})
    return item.memo[key]


def _add_curve(
    fig: go.Figure,
    x: np.ndarray,
    y: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    name: str,
    i: int,
) -> None:
    base = figures.color(i)
    if np.isfinite(lo).all() and np.isfinite(hi).all():
        figures.add_band(fig, x, lo, hi, name=f"{name}: band", fill=figures.faded(base, 0.2))
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="lines",
            name=name,
            line={"color": base, "width": 2},
            hovertemplate=f"{name}<br>%{{x:.3g}}: %{{y:.4g}}<extra></extra>",
        )
    )


def loss_figure(items: Sequence[Compared], x: str, level: float = 0.95) -> go.Figure:
    """Each fit's loss against `x` with its confidence band, one colour per fit."""
    fig = go.Figure()
    for i, item in enumerate(items):
        curve = loss_curve(item, x, level)
        name = item.label if x in size_inputs(item.result) else f"{item.label} (at N_opt(C))"
        _add_curve(
            fig,
            curve[x].to_numpy(),
            curve["loss"].to_numpy(),
            curve["lo"].to_numpy(),
            curve["hi"].to_numpy(),
            name=name,
            i=i,
        )
    fig.update_layout(
        xaxis_title=figures.AXIS_TITLES.get(x, x),
        yaxis_title=figures.AXIS_TITLES["loss"],
        hovermode="closest",
    )
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def frontier_figure(
    items: Sequence[Compared], allocation: dict[str, Any] | None = None, level: float = 0.95
) -> go.Figure:
    """N_opt(C) of each fit with a frontier (with its band), and the approaches of an
    allocation report as points with their intervals at its budgets."""
    fig = go.Figure()
    i = 0
    for item in items:
        if not has_frontier(item.result):
            continue
        curve = frontier_curve(item, level)
        _add_curve(
            fig,
            curve["flops"].to_numpy(),
            curve["N_opt"].to_numpy(),
            curve["N_opt_lo"].to_numpy(),
            curve["N_opt_hi"].to_numpy(),
            name=item.label,
            i=i,
        )
        i += 1
    for answer in (allocation or {}).get("approaches") or []:
        rows = answer.get("at_budgets") or []
        if "error" in answer or not rows:
            continue
        n = np.array([r["N_opt"] for r in rows], dtype=float)
        lo = np.array([r["N_opt_interval"][0] for r in rows], dtype=float)
        hi = np.array([r["N_opt_interval"][1] for r in rows], dtype=float)
        fig.add_trace(
            go.Scatter(
                x=[r["flops"] for r in rows],
                y=n,
                mode="lines+markers",
                name=f"Approach {answer['title']}",
                line={"color": figures.color(i), "dash": "dot"},
                marker={"size": 9, "symbol": "diamond"},
                error_y={"type": "data", "symmetric": False, "array": hi - n, "arrayminus": n - lo},
            )
        )
        i += 1
    fig.update_layout(
        xaxis_title=figures.AXIS_TITLES.get("flops", "flops"),
        yaxis_title="compute-optimal parameters N_opt",
        hovermode="closest",
    )
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


# --- the table ----------------------------------------------------------------------------


def _point(result: Any, at: dict[str, float | None]) -> tuple[dict[str, float], list[str]]:
    point, missing = {}, []
    for column in size_inputs(result):
        value = at.get(SYMBOL.get(column, column))
        if value is None:
            missing.append(column)
        else:
            point[column] = float(value)
    return point, missing


def fit_row(item: Compared, at: dict[str, float | None], level: float = 0.95) -> dict[str, Any]:
    """One fit's answers: loss at (N, D) or its one input, N_opt and D_opt at C, flags."""
    from app.dashboard import predictions

    result = item.result
    row: dict[str, Any] = {"compared": item.label, "law": result.law, "method": result.method}
    flags = list(result.doubts())
    point, missing = _point(result, at)
    row["loss at"] = ", ".join(f"{SYMBOL.get(k, k)}={v:.3g}" for k, v in point.items())
    if missing:
        flags.append(f"loss needs {', '.join(missing)}")
    else:
        try:
            out = predictions.loss_at(result, point, level)
            row["loss"], row["loss lo"], row["loss hi"] = (
                out["loss"],
                out.get("lower", np.nan),
                out.get("upper", np.nan),
            )
            if out.get("beyond"):
                flags.append(f"loss {out['beyond']}")
        except (ScalinglabError, KeyError, ValueError) as err:
            flags.append(f"loss not available: {err}")
    c = at.get("C")
    if c is not None and has_frontier(result):
        try:
            opt = predictions.compute_optimal(result, float(c))
            for key in ("N_opt", "D_opt"):
                row[key], row[f"{key} lo"], row[f"{key} hi"] = (
                    opt[key],
                    opt[f"{key}_lo"],
                    opt[f"{key}_hi"],
                )
            if opt.get("flags"):
                flags.append(f"N_opt/D_opt {opt['flags']}")
        except (ScalinglabError, KeyError, ValueError) as err:
            flags.append(f"N_opt not available: {err}")
    row["flags"] = "; ".join(flags)
    return row


def approach_rows(allocation: dict[str, Any], c: float | None) -> list[dict[str, Any]]:
    """One row per approach of an allocation report: N_opt and D_opt at budget `c` when
    the report has that budget (its intervals are only known there)."""
    rows = []
    for answer in allocation.get("approaches") or []:
        row: dict[str, Any] = {
            "compared": f"Approach {answer.get('title', answer.get('approach'))}",
            "law": answer.get("law", ""),
            "method": answer.get("interval_method", ""),
        }
        flags = list(answer.get("flags") or [])
        if "error" in answer:
            flags.insert(0, f"not available: {answer['error']}")
        elif c is not None:
            match = [
                r for r in answer.get("at_budgets") or [] if np.isclose(r["flops"], c, rtol=1e-6)
            ]
            if match:
                for key in ("N_opt", "D_opt"):
                    row[key] = match[0][key]
                    row[f"{key} lo"], row[f"{key} hi"] = match[0][f"{key}_interval"]
            else:
                budgets = ", ".join(f"{b:.3g}" for b in allocation.get("budgets") or [])
                flags.insert(0, f"C={c:.3g} is not among the report's budgets ({budgets})")
        row["flags"] = "; ".join(flags)
        rows.append(row)
    return rows


COLUMNS = (
    "compared",
    "law",
    "loss at",
    "loss",
    "loss lo",
    "loss hi",
    "N_opt",
    "N_opt lo",
    "N_opt hi",
    "D_opt",
    "D_opt lo",
    "D_opt hi",
    "method",
    "flags",
)


def answers_table(
    items: Sequence[Compared],
    at: dict[str, float | None],
    allocation: dict[str, Any] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """One row per fit, then per allocation approach; intervals at `level`."""
    rows = [fit_row(item, at, level) for item in items]
    if allocation:
        rows += approach_rows(allocation, at.get("C"))
    table = pd.DataFrame(rows)
    return table.reindex(columns=[c for c in COLUMNS if c in table.columns or c == "flags"])
