"""Report downloads for a fit (Markdown and HTML, `app.dashboard.report`), for any page.

``report_buttons(result, frame)`` draws two download buttons; the reports (and the
figures they embed, rendered by kaleido as in `publish`) are built only when a button is
pressed. Without kaleido or a Chromium the reports still download, without figures and
saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.dashboard import fitview, publish, report


def report_figures(
    result: Any, frame: pd.DataFrame, extrapolation: dict[str, Any] | None = None
) -> list[tuple[str, go.Figure]]:
    """(caption, styled figure) for what the Fit page draws of this fit."""
    from store.errors import ScalinglabError

    level = f"{100 * float(result.level):g}%"
    out: list[tuple[str, go.Figure]] = []
    if frame is None or frame.empty or "loss" not in frame.columns:
        return out
    try:
        if fitview.is_curve_fit(result):
            fig = fitview.curve_fit_figure(result, frame)
            out.append((f"{result.law}: observed loss curves and the fitted law", fig))
        elif not (result.options or {}).get("group_by"):
            held = fitview.held_out_mask(result, frame, extrapolation)
            out.append(
                (
                    f"{result.law}: the fitted points, the law, its {level} confidence band "
                    f"and the {level} prediction band for a new run",
                    fitview.point_fit_figure(result, frame, held_out=held),
                )
            )
        out.append(
            ("Residuals (log observed - log predicted)", fitview.residuals_figure(result, frame))
        )
    except (ScalinglabError, KeyError, ValueError):
        pass  # a fit whose data are gone from the store: the report keeps its numbers
    return [(caption, publish.styled(fig)) for caption, fig in out]


def build(
    result: Any,
    frame: pd.DataFrame,
    fmt: str,
    *,
    source: report.Source | None = None,
    extrapolation: dict[str, Any] | None = None,
) -> str:
    """The report text, figures embedded (SVG in HTML, PNG in Markdown) when possible."""
    problem = publish.export_problem()
    images: list[report.Image] = []
    notes: list[str] = []
    if problem is None:
        image_fmt = "svg" if fmt == "html" else "png"
        for caption, fig in report_figures(result, frame, extrapolation):
            data = publish.image_bytes(fig, image_fmt)
            images.append(report.Image(caption, publish.MIME[image_fmt], data))
    else:
        notes.append(f"Figures not embedded: the server cannot render them ({problem}).")
    write = report.html if fmt == "html" else report.markdown
    return write(result, source=source, images=images, extrapolation=extrapolation, notes=notes)


def _deferred(result: Any, frame: pd.DataFrame, fmt: str, **kw: Any) -> Callable[[], str]:
    return lambda: build(result, frame, fmt, **kw)


def report_buttons(
    result: Any,
    frame: pd.DataFrame,
    *,
    key: str = "report",
    fit_id: int | None = None,
    project: str | None = None,
    created_at: str | None = None,
    extrapolation: dict[str, Any] | None = None,
) -> None:
    """Markdown and HTML report downloads of `result` fitted on `frame`."""
    source = report.Source(fit_id=fit_id, project=project, created_at=created_at)
    stem = publish.file_stem(
        f"fit-{fit_id}-{result.law}-report" if fit_id is not None else f"{result.law}-report"
    )
    cols = st.columns([1, 1, 6])
    for col, fmt, label, mime in (
        (cols[0], "md", "Report (Markdown)", "text/markdown"),
        (cols[1], "html", "Report (HTML)", "text/html"),
    ):
        col.download_button(
            label,
            data=_deferred(result, frame, fmt, source=source, extrapolation=extrapolation),
            file_name=f"{stem}.{fmt}",
            mime=mime,
            key=f"{key}-{fmt}",
            on_click="ignore",
            icon=":material/description:",
            help="Parameters, flags, figures, data hash, options and the (Mis)Fitting "
            "checklist (Li et al. 2025)",
        )
