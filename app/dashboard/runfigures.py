"""The Runs page's figures: loss curves with an LR panel, and final losses against N, D
or C coloured by the other size, with the compute-optimal frontier of a saved fit.

Pure functions from frames (and a FitResult) to Plotly figures, free of Streamlit, so
tests and the bench call them directly. `figures` keeps the shared building blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.dashboard import figures

if TYPE_CHECKING:
    from fitting.result import FitResult

SIZE_TITLES = {
    "params": "parameters (N)",
    "tokens": "training tokens (D)",
    "flops": "training FLOPs (C)",
}
SIZE_SHORT = {"params": "N", "tokens": "D", "flops": "C"}
# The variable that colours each final-loss view: loss vs N by budget (the IsoFLOP
# view), loss vs D and loss vs C by model size.
COLOUR_BY = {"params": "flops", "tokens": "params", "flops": "params"}
FRONTIER_COLOUR = "#EF553B"
LR_TITLE = "learning rate"


def padded_log_range(values: np.ndarray, pad: float = 0.05) -> list[float] | None:
    """[lo, hi] in log10 units around the positive `values`, a fraction `pad` of the span
    wider on each side (at least 0.01 decade), so the axis fits the data, not a default."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return None
    lo, hi = np.log10(v.min()), np.log10(v.max())
    margin = max(pad * (hi - lo), 0.01)
    return [float(lo - margin), float(hi + margin)]


def run_colours(frame: pd.DataFrame, x: str, log_x: bool) -> dict[str, str]:
    """Each run's colour, by the rule `figures.curves_figure` colours its curves with
    (order of first appearance among the points it draws), so both panels agree."""
    if frame.empty:
        return {}
    data = frame.dropna(subset=["loss", x])
    if log_x:
        data = data[data[x] > 0]
    return {str(run): figures.color(i) for i, run in enumerate(dict.fromkeys(data["run"]))}


def curves_with_lr(
    frame: pd.DataFrame,
    lr: pd.DataFrame | None,
    *,
    x: str = "step",
    log_x: bool = True,
    log_y: bool = True,
    smoothing: float = 0.6,
) -> go.Figure:
    """Loss curves (`figures.curves_figure`) and, when `lr` (run, x, lr) has rows, the
    runs' learning rate in a panel below sharing the x axis (linear in LR: schedules
    decay to zero and are read that way)."""
    if lr is not None and not lr.empty:
        lr = lr.dropna(subset=["x", "lr"])
        if log_x:
            lr = lr[lr["x"] > 0]
    if lr is None or lr.empty:
        return figures.curves_figure(frame, x=x, log_x=log_x, log_y=log_y, smoothing=smoothing)
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.04
    )
    # Traces as dicts, one add_traces per panel: each validated once.
    fig.add_traces(
        figures.curve_traces(frame, x=x, log_x=log_x, smoothing=smoothing), rows=1, cols=1
    )
    colours = run_colours(frame, x, log_x)
    lr_traces = []
    for i, (run, part) in enumerate(lr.groupby("run", sort=False)):
        name = figures.plain(run)
        colour = colours.get(str(run), figures.color(len(colours) + i))
        lr_traces.append(
            {
                "type": "scatter",
                "x": part["x"].to_numpy(),
                "y": part["lr"].to_numpy(dtype=float),
                "mode": "lines" if len(part) > 1 else "markers",
                "name": f"{name} · lr",
                "legendgroup": f"{name} · lr",
                "showlegend": False,
                "line": {"color": colour, "width": 1.5},
                "marker": {"color": colour},
                "hovertemplate": f"{name}<br>{x}=%{{x:.4g}}<br>lr=%{{y:.3g}}<extra></extra>",
            }
        )
    fig.add_traces(lr_traces, rows=2, cols=1)
    fig.update_layout(
        hovermode="closest",
        legend={"title": "run / split"},
        margin={"l": 70, "r": 20, "t": 20, "b": 50},
        height=620,
    )
    fig.update_xaxes(type="log" if log_x else "linear")
    fig.update_xaxes(title_text=figures.AXIS_TITLES.get(x, x), row=2, col=1)
    fig.update_yaxes(
        title_text=figures.AXIS_TITLES["loss"], type="log" if log_y else "linear", row=1, col=1
    )
    fig.update_yaxes(title_text=LR_TITLE, type="linear", exponentformat="e", row=2, col=1)
    return fig


@dataclass
class Frontier:
    """The compute-optimal frontier of a fit: for each FLOP budget, N_opt, D_opt and the
    fitted loss there, with that loss's interval when the fit carries one."""

    flops: np.ndarray
    params: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    band: tuple[np.ndarray, np.ndarray] | None
    label: str
    method: str

    def along(self, x: str) -> np.ndarray:
        """The frontier's x coordinates in the view plotted against `x`."""
        return {"params": self.params, "tokens": self.tokens, "flops": self.flops}[x]


def frontier(result: FitResult, budgets: np.ndarray, label: str, level: float = 0.95) -> Frontier:
    """The law's own optimum (`fitting.analyses.compute_optimal`, the law's
    `compute_optimum`) at each budget; without an interval when the fit has none."""
    from fitting.analyses import compute_optimal
    from fitting.errors import FitError
    from fitting.laws import LAWS

    c = np.asarray(budgets, dtype=float)
    try:
        out = compute_optimal(result, c, level)
    except FitError:  # a fit saved without a covariance or refits: the line alone
        n, d, loss = LAWS[result.law].compute_optimum(result.params, c)
        return Frontier(c, n, d, loss, None, label, "no interval (the fit carries none)")
    band = (out["loss_lo"], out["loss_hi"])
    if not (np.all(np.isfinite(band[0])) and np.all(np.isfinite(band[1]))):
        band = None
    return Frontier(
        c, out["N_opt"], out["D_opt"], out["loss"], band, label, str(out["interval_method"])
    )


def _colour_scale(values: np.ndarray, title: str) -> dict[str, Any]:
    """A marker spec colouring by log10(values), with a colour bar ticked at decades."""
    logs = np.log10(values)
    lo, hi = float(np.min(logs)), float(np.max(logs))
    decades = np.arange(np.ceil(lo), np.floor(hi) + 1)
    if decades.size >= 2:
        ticks, text = decades, [f"10<sup>{int(k)}</sup>" for k in decades]
    else:  # less than two decades: four ticks across the range
        ticks = np.linspace(lo, hi, 4) if hi > lo else np.array([lo])
        text = [f"{10**k:.3g}" for k in ticks]
    return {
        "color": logs,
        "colorscale": "Viridis",
        "cmin": lo,
        "cmax": hi if hi > lo else lo + 1e-9,
        "showscale": True,
        "colorbar": {
            "title": {"text": title, "side": "right"},
            "tickvals": list(ticks),
            "ticktext": text,
            "x": 1.02,
            "xanchor": "left",
            "len": 0.9,
            "thickness": 14,
        },
        "size": 8,
        "line": {"width": 0.5, "color": "white"},
    }


def final_loss_figure(
    table: pd.DataFrame,
    *,
    x: str = "params",
    colour_by: str | None = None,
    frontier_line: Frontier | None = None,
    log_y: bool = True,
) -> go.Figure:
    """Final losses (one point per run) against `x` (params, tokens or flops) on log
    axes, coloured by log10 of `colour_by` (default: the other size, `COLOUR_BY`), with
    the frontier and its band on top. Axis ranges fit the points; the legend sits above
    the plot and the colour bar to its right, so neither covers the other."""
    colour_by = colour_by or COLOUR_BY[x]
    data = table[np.isfinite(table[x].astype(float)) & (table[x].astype(float) > 0)]
    data = data[np.isfinite(data["loss"].astype(float))]
    if log_y:
        data = data[data["loss"] > 0]
    fig = go.Figure()
    if frontier_line is not None:
        fx = frontier_line.along(x)
        if frontier_line.band is not None:
            figures.add_band(fig, fx, *frontier_line.band, name=f"{frontier_line.label}: 95% band")
        fig.add_trace(
            go.Scatter(
                x=fx,
                y=frontier_line.loss,
                mode="lines",
                name=frontier_line.label,
                line={"color": FRONTIER_COLOUR, "width": 2.5},
                customdata=np.column_stack(
                    [frontier_line.flops, frontier_line.params, frontier_line.tokens]
                ),
                hovertemplate="C=%{customdata[0]:.3g}<br>N_opt=%{customdata[1]:.3g}"
                "<br>D_opt=%{customdata[2]:.3g}<br>loss=%{y:.4f}<extra>frontier</extra>",
            )
        )
    colour = data[colour_by].astype(float).to_numpy() if colour_by in data else np.array([])
    has_colour = np.isfinite(colour) & (colour > 0) if colour.size else np.zeros(len(data), bool)
    hover = (
        "%{text}<br>N=%{customdata[0]:.3g}<br>D=%{customdata[1]:.3g}"
        "<br>C=%{customdata[2]:.3g}<br>loss=%{y:.4f}<extra></extra>"
    )
    custom = data[["params", "tokens", "flops"]].astype(float).to_numpy()
    names = np.array([figures.plain(r) for r in data["run"]], dtype=object)
    if has_colour.any():
        fig.add_trace(
            go.Scatter(
                x=data[x].to_numpy(dtype=float)[has_colour],
                y=data["loss"].to_numpy(dtype=float)[has_colour],
                mode="markers",
                name=f"runs (colour: {SIZE_SHORT[colour_by]})",
                marker=_colour_scale(colour[has_colour], SIZE_TITLES[colour_by]),
                text=names[has_colour],
                customdata=custom[has_colour],
                hovertemplate=hover,
            )
        )
    if (~has_colour).any():
        fig.add_trace(
            go.Scatter(
                x=data[x].to_numpy(dtype=float)[~has_colour],
                y=data["loss"].to_numpy(dtype=float)[~has_colour],
                mode="markers",
                name=f"runs without {SIZE_SHORT[colour_by]}",
                marker={"color": "#888888", "size": 8, "symbol": "circle-open"},
                text=names[~has_colour],
                customdata=custom[~has_colour],
                hovertemplate=hover,
            )
        )
    fig.update_layout(
        hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
        margin={"l": 70, "r": 20, "t": 50, "b": 55},
        height=520,
    )
    # Log axes (their decade ticks come with `publish.chart`'s styling), ranged to the
    # points: an empty or stray trace must not stretch them.
    fig.update_xaxes(title_text=SIZE_TITLES[x], type="log", range=padded_log_range(data[x]))
    y_range = padded_log_range(data["loss"]) if log_y else None
    fig.update_yaxes(
        title_text=figures.AXIS_TITLES["loss"],
        type="log" if log_y else "linear",
        range=y_range,
    )
    return fig
