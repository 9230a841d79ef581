"""Figures as researchers take them away: publication styling and PNG/SVG downloads.

``chart(fig, *, key, name, **kwargs)`` draws a Plotly figure with publication styling
(`styled`: white background, 14 px ticks, log axes ticked at decades, the legend below the
plot) and offers that same styled figure as PNG and SVG files named after `name`; it
returns what ``st.plotly_chart`` returns (``on_select`` and the rest pass through).

Two routes to the files, because one alone fails somewhere:
- Server side (the PNG and SVG buttons): kaleido renders the figure in a headless
  Chromium, only when a button is pressed (Streamlit's deferred download data). It needs
  the ``figures`` extra and a Chromium the server can start (found on PATH, e.g. Debian's
  /usr/bin/chromium, or named by ``$BROWSER_PATH``); kaleido never downloads one here.
- In the browser (the camera in the chart's toolbar): Plotly.js writes a PNG of the chart
  as drawn (zoom included). It needs nothing on the server, so the slim Docker image,
  which has no Chromium, still gets a PNG; the page then says why the buttons are missing.
"""

from __future__ import annotations

import atexit
import copy
import functools
import math
import os
import re
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

EXPORT_WIDTH, EXPORT_HEIGHT, PNG_SCALE = 900, 560, 2
TICK_PX, TITLE_PX, LEGEND_PX = 14, 16, 13
FONT_FAMILY = "Arial, Helvetica, sans-serif"
GRID = "#e6e6e6"
MIME = {"png": "image/png", "svg": "image/svg+xml"}
NO_EXPORT_NOTE = (
    "PNG/SVG files are rendered on the server by kaleido, which needs the `figures` extra "
    "(`pip install 'scalinglab[figures]'`) and a Chromium it can start ({why}). The camera "
    "in the chart's toolbar saves a PNG from your browser."
)


# --- styling ------------------------------------------------------------------------------


AXIS_STYLE: dict[str, Any] = {
    "showline": True,
    "linecolor": "black",
    "linewidth": 1,
    "mirror": True,
    "ticks": "outside",
    "showgrid": True,
    "gridcolor": GRID,
    "zeroline": False,
    "tickfont": {"size": TICK_PX},
    "title": {"font": {"size": TITLE_PX}},
    "automargin": True,
}
LEGEND_STYLE: dict[str, Any] = {
    "orientation": "h",
    "traceorder": "normal",  # a filled band would otherwise reverse the order
    "yanchor": "top",
    "y": -0.2,
    "xanchor": "left",
    "x": 0.0,
    "font": {"size": LEGEND_PX},
    "bgcolor": "rgba(255,255,255,0)",
    "title": {"text": ""},
}


def styled(fig: go.Figure) -> go.Figure:
    """A copy of `fig` in publication style (the original is left as it is).

    The styling is merged into the figure's plain dict and validated once when the copy
    is built: Plotly's per-property updates cost ~10 ms an axis on a figure of 80 traces."""
    spec = fig.to_dict()
    layout = spec.setdefault("layout", {})
    margin = layout.get("margin", {})
    layout["template"] = _template()  # replaced, not merged into the default one
    _merge(
        layout,
        {
            "paper_bgcolor": "white",
            "plot_bgcolor": "white",
            "font": {"family": FONT_FAMILY, "size": TICK_PX, "color": "black"},
            "legend": LEGEND_STYLE,
            # The legend sits under the x title: room for it, and the top free of a
            # title's margin.
            "margin": {
                "l": margin.get("l", 70),
                "r": margin.get("r", 20),
                "t": margin.get("t", 30),
                "b": max(margin.get("b") or 0, 110),
            },
        },
    )
    for name in [key for key in layout if key.startswith(("xaxis", "yaxis"))]:
        settings = dict(AXIS_STYLE)
        if layout[name].get("type") == "log":  # only a log axis needs the data's span
            settings.update(log_ticks(_axis_values(fig, name[0], name[0] + name[5:])))
        _merge(layout[name], settings)
    return go.Figure(spec)


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    """`update` merged into `into` as Plotly's update does: nested dicts merged, the rest
    replaced (copies, so the shared style dicts stay as they are)."""
    for key, value in update.items():
        if isinstance(value, dict):
            if not isinstance(into.get(key), dict):
                into[key] = {}
            _merge(into[key], value)
        else:
            into[key] = value


@functools.lru_cache(maxsize=1)
def _template_spec() -> dict[str, Any]:
    # As Plotly resolves the name when a figure's layout is given it.
    return go.Figure(layout={"template": "simple_white"}).to_dict()["layout"]["template"]


def _template() -> dict[str, Any]:
    return copy.deepcopy(_template_spec())


def log_ticks(values: np.ndarray) -> dict[str, Any]:
    """Tick settings of a log axis: labelled decades (10^k) with unlabelled minor ticks
    ("D1") when the data span two decades or more; within a shorter span (a loss axis)
    round values at full size, since decades alone would leave one label or none."""
    positive = values[np.isfinite(values) & (values > 0)]
    if not positive.size:
        return {"exponentformat": "power"}
    low, high = float(positive.min()), float(positive.max())
    if math.log10(high / low) >= 2:
        return {
            "dtick": 1,
            "exponentformat": "power",
            "showexponent": "all",
            "minor": {"ticks": "outside", "dtick": "D1", "showgrid": False},
        }
    ticks = nice_ticks(low, high)
    return {"tickmode": "array", "tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]}


def nice_ticks(low: float, high: float, target: int = 6) -> list[float]:
    """Round values (steps of 1, 2 or 5 times a power of ten) covering [low, high]."""
    raw = (high - low) / max(target - 1, 1) or abs(high) or 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = [first + i * step for i in range(int((high - first) / step) + 2)]
    return [float(f"{t:.12g}") for t in ticks if t > 0]


def _axis_values(fig: go.Figure, letter: str, ref: str) -> np.ndarray:
    """Every number the traces put on axis `ref` (x or y, by the trace's axis reference);
    read from the figure's traces, since its dict holds arrays base64-encoded."""
    chunks = []
    for trace in fig.data:
        if (getattr(trace, f"{letter}axis", None) or letter) != ref:
            continue
        data = getattr(trace, letter, None)
        if data is None:
            continue
        try:  # numbers, as nearly every trace holds: one conversion
            chunks.append(np.asarray(data, dtype=float).ravel())
        except (TypeError, ValueError):
            arr = np.asarray(data, dtype=object).ravel()
            chunks.append(np.asarray(_numbers(arr), dtype=float))
    return np.concatenate(chunks) if chunks else np.array([], dtype=float)


def _numbers(arr: np.ndarray) -> list[float]:
    out = []
    for value in arr:
        try:
            out.append(float(value))
        except (TypeError, ValueError):
            continue  # categories, dates: not on a log axis
    return out


# --- files --------------------------------------------------------------------------------


def file_stem(name: str) -> str:
    """`name` as a safe file name stem (letters, digits, '-', '_', '.')."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return stem[:80] or "figure"


@functools.lru_cache(maxsize=1)
def export_problem() -> str | None:
    """Why the server cannot render figure files (None when it can)."""
    try:
        import kaleido  # noqa: F401
        from choreographer.browsers.chromium import Chromium
    except ImportError:
        return "kaleido is not installed"
    try:
        path = Chromium.find_browser(skip_local=False)
    except (OSError, RuntimeError, ValueError) as err:
        return f"no Chromium found: {err}"
    if not path:
        return "no Chromium on PATH and $BROWSER_PATH unset"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return f"{path} is not an executable Chromium"
    return None


def image_bytes(fig: go.Figure, fmt: str) -> bytes:
    """`fig` rendered as PNG or SVG by kaleido at the export size (PNG at 2x).

    One headless Chromium serves every render of the process (the first takes seconds,
    later ones a fraction of one) and is closed after `BROWSER_IDLE_S` without a render;
    a render that fails (a browser gone, a page not yet loaded under load) is tried once
    more on a fresh browser."""
    if fmt not in MIME:
        raise ValueError(f"image format must be png or svg, not {fmt!r}")
    opts = {
        "format": fmt,
        "width": EXPORT_WIDTH,
        "height": EXPORT_HEIGHT,
        "scale": PNG_SCALE if fmt == "png" else 1,
    }
    import kaleido

    with _RENDER_LOCK:
        try:
            try:
                _ensure_server()
                return bytes(kaleido.calc_fig_sync(fig, opts=opts))
            except Exception:  # kaleido raises its own types from the browser: one retry
                _ensure_server(restart=True)
                return bytes(kaleido.calc_fig_sync(fig, opts=opts))
        finally:
            _close_when_idle()


BROWSER_IDLE_S = 600.0  # a dashboard's Chromium (~0.2 GB) goes after 10 minutes unused
_RENDER_LOCK = threading.Lock()
_SERVER: dict[str, bool] = {"open": False}
_IDLE: dict[str, Any] = {"generation": 0, "timer": None}


def _close_when_idle() -> None:
    """(Re)arm the timer that closes the browser when no render came for BROWSER_IDLE_S;
    called with the render lock held."""
    _IDLE["generation"] += 1
    if _IDLE["timer"] is not None:
        _IDLE["timer"].cancel()
    timer = threading.Timer(BROWSER_IDLE_S, _close_idle, args=(_IDLE["generation"],))
    timer.daemon = True
    _IDLE["timer"] = timer
    timer.start()


def _close_idle(generation: int) -> None:
    import kaleido

    with _RENDER_LOCK:
        # A render since this timer was armed re-armed another: this one is stale.
        if generation == _IDLE["generation"] and _SERVER["open"]:
            kaleido.stop_sync_server(silence_warnings=True)
            _SERVER["open"] = False


def browser_open() -> bool:
    """Whether this process holds a headless Chromium for figure files."""
    return _SERVER["open"]


def _ensure_server(*, restart: bool = False) -> None:
    import kaleido

    if restart and _SERVER["open"]:
        kaleido.stop_sync_server(silence_warnings=True)
        _SERVER["open"] = False
    if not _SERVER["open"]:
        kaleido.start_sync_server(silence_warnings=True)
        if not _SERVER.get("atexit"):
            atexit.register(kaleido.stop_sync_server, silence_warnings=True)
            _SERVER["atexit"] = True
        _SERVER["open"] = True


def _deferred(fig: go.Figure, fmt: str) -> Callable[[], bytes]:
    """The file, rendered only when its button is pressed (Streamlit calls it then)."""
    return lambda: image_bytes(fig, fmt)


def chart(fig: Any, *, key: str, name: str, **kwargs: Any) -> Any:
    """Draw `fig` in publication style with PNG and SVG downloads of that figure."""
    shown = styled(fig if isinstance(fig, go.Figure) else go.Figure(fig))
    stem = file_stem(name)
    config = {
        "displaylogo": False,
        "toImageButtonOptions": {
            "format": "png",
            "filename": stem,
            "width": EXPORT_WIDTH,
            "height": EXPORT_HEIGHT,
            "scale": PNG_SCALE,
        },
        **(kwargs.pop("config", None) or {}),
    }
    kwargs.setdefault("width", "stretch")
    # No Streamlit theme on top: the chart on the page is the figure in the files.
    kwargs.setdefault("theme", None)
    state = st.plotly_chart(shown, key=key, config=config, **kwargs)
    download_buttons(shown, key=key, stem=stem)
    return state


def download_buttons(fig: go.Figure, *, key: str, stem: str) -> None:
    """PNG and SVG buttons for an already styled figure, or the note saying why not."""
    problem = export_problem()
    if problem is not None:
        st.caption(NO_EXPORT_NOTE.format(why=problem))
        return
    cols = st.columns([1, 1, 8])
    for col, fmt in zip(cols, ("png", "svg"), strict=False):
        col.download_button(
            fmt.upper(),
            data=_deferred(fig, fmt),
            file_name=f"{stem}.{fmt}",
            mime=MIME[fmt],
            key=f"{key}-{fmt}",
            on_click="ignore",
            icon=":material/download:",
            help=f"{fmt.upper()} of this figure ({EXPORT_WIDTH}x{EXPORT_HEIGHT} px)",
        )
