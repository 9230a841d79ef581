"""Figures of the Fit page's views (`fitframes` makes their frames): IsoFLOP slices, the
compute-optimal frontier, predicted against observed, residuals against each input, and
loss curves with both bands. Pure functions from frames to Plotly figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.dashboard.figures import (
    AXIS_TITLES,
    BAND_FILL,
    PREDICTION_FILL,
    add_band,
    color,
    faded,
)
from app.dashboard.fitframes import Frontier, Slice

MARGIN = {"l": 60, "r": 20, "t": 30, "b": 50}
LOG_INPUTS = ("params", "tokens", "flops", "step", "encoder_params", "decoder_params")


def isoflop_figure(slices: list[Slice]) -> go.Figure:
    """Loss against N at each compute budget: the points and L(N, C / 6N), log axes; the
    law's optimum on each curve as a star."""
    fig = go.Figure()
    for i, s in enumerate(slices):
        name = f"C = {s.flops:.2g}"
        col = color(i)
        fig.add_trace(
            go.Scatter(
                x=s.points["params"],
                y=s.points["loss"],
                mode="markers",
                name=f"{name} data",
                legendgroup=name,
                marker={"color": col, "size": 7},
                text=s.points.get("run"),
                hovertemplate="%{text}<br>N=%{x:.3g}<br>loss=%{y:.4f}<extra></extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=s.curve["params"],
                y=s.curve["loss"],
                mode="lines",
                name=f"{name} fit",
                legendgroup=name,
                line={"color": col, "width": 2},
                hovertemplate="N=%{x:.3g}<br>fitted=%{y:.4f}<extra></extra>",
            )
        )
        if s.optimum is not None:
            fig.add_trace(
                go.Scatter(
                    x=[s.optimum[0]],
                    y=[s.optimum[1]],
                    mode="markers",
                    name=f"{name} optimum",
                    legendgroup=name,
                    showlegend=False,
                    marker={"color": col, "symbol": "star", "size": 12, "line": {"width": 1}},
                    hovertemplate="N_opt=%{x:.3g}<br>loss=%{y:.4f}<extra></extra>",
                )
            )
    fig.update_layout(
        xaxis_title=AXIS_TITLES["params"],
        yaxis_title=AXIS_TITLES["loss"],
        legend={"title": "budget"},
        margin=MARGIN,
        hovermode="closest",
    )
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def frontier_figure(front: Frontier, level: float = 0.95) -> go.Figure:
    """N_opt(C) with its band (log-log), the best observed N of each budget, and where
    the data end."""
    fig = go.Figure()
    pct = f"{100 * level:g}%"
    if np.isfinite(front.lo).any():
        add_band(fig, front.flops, front.lo, front.hi, name=f"{pct} band of N_opt")
    fig.add_trace(
        go.Scatter(
            x=front.flops,
            y=front.n_opt,
            mode="lines",
            name="N_opt(C) of the fit",
            line={"color": "#EF553B", "width": 2},
            hovertemplate="C=%{x:.3g}<br>N_opt=%{y:.3g}<extra></extra>",
        )
    )
    if len(front.observed):
        fig.add_trace(
            go.Scatter(
                x=front.observed["flops"],
                y=front.observed["params"],
                mode="markers",
                name="lowest loss of each budget",
                marker={"color": "#636EFA", "size": 8, "symbol": "diamond"},
                hovertemplate="C=%{x:.3g}<br>N=%{y:.3g}<extra></extra>",
            )
        )
    fig.add_vline(
        x=front.max_seen, line={"dash": "dot", "color": "grey"}, annotation_text="extrapolation →"
    )
    fig.update_layout(
        xaxis_title=AXIS_TITLES["flops"],
        yaxis_title="compute-optimal parameters N_opt",
        margin=MARGIN,
        hovermode="closest",
    )
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


def predicted_observed_figure(frame: pd.DataFrame) -> go.Figure:
    """Observed against predicted loss with the line y = x; held-out points as crosses."""
    fig = go.Figure()
    lo = float(np.nanmin(frame[["observed", "predicted"]].to_numpy()))
    hi = float(np.nanmax(frame[["observed", "predicted"]].to_numpy()))
    fig.add_trace(
        go.Scatter(
            x=[lo, hi],
            y=[lo, hi],
            mode="lines",
            name="y = x",
            line={"dash": "dash", "color": "grey"},
            hoverinfo="skip",
        )
    )
    held = frame["held_out"].to_numpy(bool)
    for sel, name, symbol in ((~held, "fitted points", "circle"), (held, "held out", "x")):
        if sel.any():
            part = frame[sel]
            fig.add_trace(
                go.Scatter(
                    x=part["predicted"],
                    y=part["observed"],
                    mode="markers",
                    name=name,
                    text=part["run"],
                    marker={"symbol": symbol, "size": 7, "color": "#636EFA"},
                    hovertemplate="%{text}<br>predicted=%{x:.4f}<br>observed=%{y:.4f}"
                    "<extra></extra>",
                )
            )
    fig.update_layout(
        xaxis_title="predicted loss",
        yaxis_title="observed loss",
        margin=MARGIN,
        hovermode="closest",
    )
    return fig


def residuals_by_input_figure(frame: pd.DataFrame, inputs: list[str]) -> go.Figure:
    """The residuals against each input, one panel per input (log x for sizes), each with
    the zero line."""
    k = max(1, len(inputs))
    fig = make_subplots(rows=1, cols=k, shared_yaxes=True, horizontal_spacing=0.04)
    for j, col in enumerate(inputs, start=1):
        fig.add_trace(
            go.Scatter(
                x=frame[col],
                y=frame["residual"],
                mode="markers",
                name=f"residual vs {col}",
                showlegend=False,
                marker={"size": 5, "color": "#636EFA"},
                text=frame["run"].astype(str) if "run" in frame else None,
                hovertemplate=f"%{{text}}<br>{col}=%{{x:.4g}}<br>residual=%{{y:.2e}}"
                "<extra></extra>",
            ),
            row=1,
            col=j,
        )
        fig.add_hline(y=0.0, line={"dash": "dash", "color": "grey"}, row=1, col=j)
        fig.update_xaxes(
            title_text=AXIS_TITLES.get(col, col),
            type="log" if col in LOG_INPUTS else "linear",
            row=1,
            col=j,
        )
    fig.update_yaxes(title_text="residual", row=1, col=1)
    fig.update_layout(margin=MARGIN, height=360)
    return fig


def curve_bands_figure(
    frame: pd.DataFrame,
    *,
    level: float = 0.95,
    held_from: float | None = None,
) -> go.Figure:
    """Each run's observed curve, the fitted curve and its two bands (``lo``/``hi``: the
    confidence band; ``plo``/``phi``: the prediction band), in the run's colour; with
    ``held_from`` the observed points at or past that step (held out by the
    extrapolation test) are crosses."""
    fig = go.Figure()
    pct = f"{100 * level:g}%"
    for i, (run, part) in enumerate(frame.groupby("run", sort=True)):
        part = part.sort_values("step")
        col = color(i)
        first = i == 0  # one legend entry per band kind
        bands = (
            ("plo", "phi", f"{pct} prediction band (a new run)", PREDICTION_FILL),
            ("lo", "hi", f"{pct} confidence band (the law)", BAND_FILL),
        )
        for low, high, label, fill in bands:  # the wider band first, beneath
            if {low, high} <= set(part.columns) and np.isfinite(part[low]).any():
                x = part["step"].to_numpy()
                add_band(fig, x, part[low].to_numpy(), part[high].to_numpy(), name=label, fill=fill)
                fig.data[-1].showlegend = first
        seen = part.dropna(subset=["loss"])
        held = (
            np.zeros(len(seen), bool)
            if held_from is None
            else seen["step"].to_numpy(float) >= held_from
        )
        for sel, label, mode in ((~held, "observed", "lines"), (held, "held out", "markers")):
            if sel.any():
                fig.add_trace(
                    go.Scatter(
                        x=seen["step"][sel],
                        y=seen["loss"][sel],
                        mode=mode,
                        name=f"{run} {label}",
                        line={"color": faded(col, 0.6), "width": 1},
                        marker={"symbol": "x", "size": 6, "color": col},
                    )
                )
        fig.add_trace(
            go.Scatter(
                x=part["step"],
                y=part["predicted"],
                mode="lines",
                name=f"{run} fit",
                line={"color": col, "width": 2, "dash": "dash"},
            )
        )
    fig.update_layout(
        xaxis_title=AXIS_TITLES["step"],
        yaxis_title=AXIS_TITLES["loss"],
        margin=MARGIN,
        hovermode="closest",
    )
    return fig
