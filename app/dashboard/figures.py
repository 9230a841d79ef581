"""Plotly figure builders for the dashboard: pure functions from frames/arrays to figures.

Kept free of Streamlit so they can be tested directly and reused by the bench.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from scipy.signal import lfilter

PALETTE: list[str] = list(qualitative.Plotly) + list(qualitative.D3)
AXIS_TITLES = {
    "step": "step",
    "tokens": "tokens (D)",
    "flops": "training FLOPs (C)",
    "params": "parameters (N)",
    "loss": "loss (nats/token)",
}
BAND_FILL = "rgba(99, 110, 250, 0.18)"
PREDICTION_FILL = "rgba(99, 110, 250, 0.08)"  # lighter: the wider band behind the other


def color(i: int) -> str:
    """A stable colour for the i-th series."""
    return PALETTE[i % len(PALETTE)]


def plain(text: object) -> str:
    """User text (a run name) for Plotly, which renders a few HTML tags in labels."""
    return html.escape(str(text), quote=False)


def faded(hex_color: str, alpha: float = 0.25) -> str:
    """The same colour, translucent: the raw curve drawn behind its smoothed line."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[k : k + 2], 16) for k in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


def ema_debiased(values: Sequence[float] | np.ndarray, smoothing: float) -> np.ndarray:
    """Exponential moving average with the start-up bias removed (TensorBoard's smoothing).

    s_t = w s_{t-1} + (1 - w) y_t, reported as s_t / (1 - w^n) with n the count of finite
    values seen, so the first points are not dragged toward zero. NaNs are skipped.
    """
    y = np.asarray(values, dtype=float)
    w = float(np.clip(smoothing, 0.0, 0.999))
    if w == 0.0:
        return y.copy()
    finite = np.isfinite(y)
    if finite.all():
        # The recursion as a linear filter: one C loop instead of a Python one.
        acc = lfilter([1.0 - w], [1.0, -w], y)
        return acc / (1.0 - w ** np.arange(1, len(y) + 1))
    out = np.full_like(y, np.nan)
    acc, n = 0.0, 0
    for i, v in enumerate(y):
        if finite[i]:
            acc = w * acc + (1.0 - w) * v
            n += 1
        if n:
            out[i] = acc / (1.0 - w**n)
    return out


def _log_axes(fig: go.Figure, log_x: bool, log_y: bool, row: int | None = None) -> None:
    kw = {} if row is None else {"row": row, "col": 1}
    fig.update_xaxes(type="log" if log_x else "linear", **kw)
    fig.update_yaxes(type="log" if log_y else "linear", **kw)


def curves_figure(
    frame: pd.DataFrame,
    *,
    x: str = "step",
    log_x: bool = True,
    log_y: bool = True,
    smoothing: float = 0.6,
    title: str | None = None,
) -> go.Figure:
    """Loss curves, one colour per run; each split is its own line (eval dashed).

    `frame` needs `run`, `split`, `loss` and the x column. With smoothing > 0 the raw
    curve is drawn faded behind its debiased EMA.
    """
    fig = go.Figure(data=curve_traces(frame, x=x, log_x=log_x, smoothing=smoothing))
    fig.update_layout(
        title=title,
        hovermode="closest",
        legend={"title": "run / split"},
        margin={"l": 60, "r": 20, "t": 40 if title else 20, "b": 50},
        xaxis_title=AXIS_TITLES.get(x, x),
        yaxis_title=AXIS_TITLES["loss"],
    )
    _log_axes(fig, log_x, log_y)
    return fig


def curve_traces(
    frame: pd.DataFrame, *, x: str, log_x: bool, smoothing: float
) -> list[dict[str, object]]:
    """`curves_figure`'s traces as plain dicts: Plotly validates each trace once, when a
    figure takes them (a Scatter object is validated again on every copy into a figure)."""
    data = frame.dropna(subset=["loss", x]) if len(frame) else frame
    if log_x and len(data):
        data = data[data[x] > 0]
    if not len(data):
        return []
    runs = {run: i for i, run in enumerate(dict.fromkeys(data["run"]))}
    # One sort and one groupby for all series (not a filter per run).
    data = data.sort_values(["run", "split", x], kind="stable")
    traces: list[dict[str, object]] = []
    for (run, split), series in data.groupby(["run", "split"], sort=False):
        traces += _curve(series, plain(run), plain(split), x, color(runs[run]), smoothing)
    return traces


def _curve(
    series: pd.DataFrame,
    run: str,
    split: str,
    x: str,
    base: str,
    smoothing: float,
) -> list[dict[str, object]]:
    name = f"{run} · {split}"
    dash = None if split == "train" else "dash"
    xs, ys = series[x].to_numpy(), series["loss"].to_numpy(dtype=float)
    hover = f"{run} ({split})<br>{x}=%{{x:.4g}}<br>loss=%{{y:.4f}}<extra></extra>"
    smooth = smoothing > 0 and len(ys) > 2
    raw = {
        "type": "scatter",
        "x": xs,
        "y": ys,
        "mode": "lines" if len(ys) > 1 else "markers",
        "name": name if not smooth else f"{name} (raw)",
        "legendgroup": name,
        "showlegend": not smooth,
        "line": {"color": faded(base) if smooth else base, "width": 1, "dash": dash},
        "marker": {"color": base},
        "hovertemplate": hover,
    }
    if not smooth:
        return [raw]
    return [
        raw,
        {
            "type": "scatter",
            "x": xs,
            "y": ema_debiased(ys, smoothing),
            "mode": "lines",
            "name": name,
            "legendgroup": name,
            "line": {"color": base, "width": 2, "dash": dash},
            "hovertemplate": hover.replace("loss=", "smoothed="),
        },
    ]


def add_band(
    fig: go.Figure,
    x: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    row: int | None = None,
    *,
    name: str = "95% band",
    fill: str = BAND_FILL,
) -> None:
    """A shaded band between lo and hi (the upper edge first, the fill down to it), shown
    in the legend as ``name``."""
    where = {} if row is None else {"row": row, "col": 1}
    edge = {"mode": "lines", "line": {"width": 0}, "hoverinfo": "skip"}
    upper = go.Scatter(x=x, y=hi, showlegend=False, name=f"{name} upper", **edge)
    fig.add_trace(upper, **where)
    fig.add_trace(go.Scatter(x=x, y=lo, fill="tonexty", fillcolor=fill, name=name, **edge), **where)


def _add_points(
    fig: go.Figure,
    x: np.ndarray,
    y: np.ndarray,
    held_out: np.ndarray | None,
    labels: Sequence[str] | None,
    x_name: str,
) -> None:
    """The data: fitted points as dots, held-out ones (extrapolation test) as crosses."""
    mask = np.zeros(len(x), bool) if held_out is None else np.asarray(held_out, bool)
    hover = f"%{{text}}<br>{x_name}=%{{x:.4g}}<br>loss=%{{y:.4f}}<extra></extra>"
    for sel, name, symbol in ((~mask, "data (fitted)", "circle"), (mask, "held out", "x")):
        if sel.any():
            fig.add_trace(
                go.Scatter(
                    x=x[sel],
                    y=y[sel],
                    mode="markers",
                    name=name,
                    hovertemplate=hover,
                    marker={"symbol": symbol, "size": 8, "color": "#636EFA"},
                    text=None if labels is None else np.asarray(labels)[sel],
                )
            )


def fit_figure(
    x: np.ndarray,
    y: np.ndarray,
    grid: np.ndarray,
    pred: np.ndarray,
    band: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    x_name: str = "params",
    labels: Sequence[str] | None = None,
    held_out: np.ndarray | None = None,
    l_inf: float | None = None,
    entropy: float | None = None,
    x_max_seen: float | None = None,
    band_name: str = "95% band",
    prediction_band: tuple[np.ndarray, np.ndarray] | None = None,
    prediction_name: str = "95% prediction band",
) -> go.Figure:
    """Data points, the fitted curve and its bands, on log-log axes: ``band`` (the
    confidence band of the law, named ``band_name``) and ``prediction_band`` (where a new
    observation should fall), each named in the legend.

    `held_out` marks points kept out of the fit (the extrapolation test). The fitted
    irreducible loss and the source's true entropy, when known, are horizontal lines.
    """
    fig = go.Figure()
    if prediction_band is not None:
        add_band(fig, grid, *prediction_band, name=prediction_name, fill=PREDICTION_FILL)
    if band is not None:
        add_band(fig, grid, *band, name=band_name)
    fig.add_trace(
        go.Scatter(
            x=grid,
            y=pred,
            mode="lines",
            name="fit",
            line={"color": "#EF553B", "width": 2},
            hovertemplate=f"{x_name}=%{{x:.4g}}<br>predicted=%{{y:.4f}}<extra></extra>",
        )
    )
    _add_points(fig, np.asarray(x), np.asarray(y), held_out, labels, x_name)
    _hline(fig, grid, l_inf, "fitted irreducible loss L∞", "#00CC96")
    _hline(fig, grid, entropy, "true entropy of the source", "#AB63FA")
    if x_max_seen is not None:
        fig.add_vline(
            x=x_max_seen, line={"dash": "dot", "color": "grey"}, annotation_text="extrapolation →"
        )
    fig.update_layout(
        xaxis_title=AXIS_TITLES.get(x_name, x_name),
        yaxis_title=AXIS_TITLES["loss"],
        margin={"l": 60, "r": 20, "t": 20, "b": 50},
        hovermode="closest",
    )
    _log_axes(fig, True, True)
    return fig


def _hline(fig: go.Figure, grid: np.ndarray, value: float | None, name: str, col: str) -> None:
    if value is None or not np.isfinite(value) or len(grid) == 0:
        return
    fig.add_trace(
        go.Scatter(
            x=[np.min(grid), np.max(grid)],
            y=[value, value],
            mode="lines",
            name=name,
            line={"dash": "dash", "color": col},
            hovertemplate=f"{name}: {value:.4f}<extra></extra>",
        )
    )


def residuals_figure(x: np.ndarray, residuals: np.ndarray, *, x_name: str = "params") -> go.Figure:
    """Residuals (log observed - log predicted) against x, with the zero line."""
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=residuals,
            mode="markers",
            name="residual",
            hovertemplate=f"{x_name}=%{{x:.4g}}<br>residual=%{{y:.2e}}<extra></extra>",
        )
    )
    fig.add_hline(y=0.0, line={"dash": "dash", "color": "grey"})
    fig.update_layout(
        xaxis_title=AXIS_TITLES.get(x_name, x_name),
        yaxis_title="log residual",
        margin={"l": 60, "r": 20, "t": 20, "b": 50},
    )
    fig.update_xaxes(type="log")
    return fig


def kl_figure(
    x: np.ndarray, irreducible: np.ndarray, reducible: np.ndarray, *, x_name: str = "params"
) -> go.Figure:
    """The loss split into irreducible (entropy estimate) and reducible (KL) parts, stacked."""
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=[f"{v:.3g}" for v in x], y=irreducible, name="irreducible (S)", marker_color="#00CC96"
        )
    )
    fig.add_trace(
        go.Bar(
            x=[f"{v:.3g}" for v in x], y=reducible, name="reducible (KL)", marker_color="#EF553B"
        )
    )
    fig.update_layout(
        barmode="stack",
        xaxis_title=AXIS_TITLES.get(x_name, x_name),
        yaxis_title=AXIS_TITLES["loss"],
        margin={"l": 60, "r": 20, "t": 20, "b": 50},
    )
    return fig


def history_figure(
    history: pd.DataFrame,
    value: str,
    *,
    lo: str | None = None,
    hi: str | None = None,
    title: str | None = None,
) -> go.Figure:
    """A job's fits over time: one value (a parameter or a prediction) with its interval."""
    fig = go.Figure()
    h = history.sort_values("created_at") if len(history) else history
    err = None
    if lo and hi and len(h) and lo in h and hi in h:
        err = {
            "type": "data",
            "symmetric": False,
            "array": (h[hi] - h[value]).to_numpy(),
            "arrayminus": (h[value] - h[lo]).to_numpy(),
        }
    fig.add_trace(
        go.Scatter(
            x=h["created_at"] if len(h) else [],
            y=h[value] if len(h) else [],
            mode="lines+markers",
            name=value,
            error_y=err,
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="fitted at",
        yaxis_title=value,
        margin={"l": 60, "r": 20, "t": 40 if title else 20, "b": 50},
    )
    return fig


def schedule_figure(
    steps: np.ndarray,
    lr: np.ndarray,
    predicted: np.ndarray | None,
    observed: pd.DataFrame | None = None,
    *,
    log_y: bool = False,
    band: tuple[np.ndarray, np.ndarray] | None = None,
    prediction_band: tuple[np.ndarray, np.ndarray] | None = None,
    band_name: str = "95% band",
    prediction_name: str = "95% prediction band",
) -> go.Figure:
    """An LR schedule (top) and the loss curve predicted for it (bottom), beside the
    observed curves the fit was trained on (`observed`: run, step, loss), with the
    confidence band (``band``) and the prediction band, each named."""
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.3, 0.7], vertical_spacing=0.05
    )
    fig.add_trace(
        go.Scatter(x=steps, y=lr, mode="lines", name="learning rate", line={"color": "#636EFA"}),
        row=1,
        col=1,
    )
    if observed is not None and len(observed):
        for i, (run, sub) in enumerate(observed.groupby("run", sort=True)):
            fig.add_trace(
                go.Scatter(
                    x=sub["step"],
                    y=sub["loss"],
                    mode="lines",
                    name=str(run),
                    line={"color": faded(color(i + 2), 0.5), "width": 1},
                ),
                row=2,
                col=1,
            )
    if prediction_band is not None:
        add_band(fig, steps, *prediction_band, row=2, name=prediction_name, fill=PREDICTION_FILL)
    if band is not None:
        add_band(fig, steps, *band, row=2, name=band_name)
    if predicted is not None:
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=predicted,
                mode="lines",
                name="predicted loss",
                line={"color": "#EF553B", "width": 3},
            ),
            row=2,
            col=1,
        )
    fig.update_yaxes(title_text="lr", row=1, col=1)
    fig.update_yaxes(
        title_text=AXIS_TITLES["loss"], type="log" if log_y else "linear", row=2, col=1
    )
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_layout(margin={"l": 60, "r": 20, "t": 20, "b": 50}, hovermode="x unified")
    return fig


def bar_figure(labels: Sequence[str], values: Sequence[float], *, y_title: str) -> go.Figure:
    """A plain bar chart (optimal sampling ratios, encoder/decoder split)."""
    fig = go.Figure(
        go.Bar(x=list(labels), y=list(values), marker_color=[color(i) for i in range(len(labels))])
    )
    fig.update_layout(yaxis_title=y_title, margin={"l": 60, "r": 20, "t": 20, "b": 50})
    return fig
