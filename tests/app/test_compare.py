"""The Compare page's pieces without a browser: publication styling (`publish.styled`), the
URL state (`share`) and the comparison's table and figures (`comparison`) on real fits of
the shipped Chinchilla points, checked against the fits' own predictions and analyses."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from app.dashboard import comparison, publish, share
from tests.fitting.conftest import chinchilla_frame

AT = {"N": 3e9, "D": 6e10, "C": 1e21}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    frame = chinchilla_frame()
    return frame.assign(flops=6.0 * frame["params"] * frame["tokens"])


@pytest.fixture(scope="module")
def items(data: pd.DataFrame) -> list[comparison.Compared]:
    import fitting

    chin = fitting.fit("chinchilla", data, bootstrap=50, seed=0)
    power = fitting.fit("power_law", data, x="params", bootstrap=50, seed=0)
    return [
        comparison.Compared(1, "fit 1: chinchilla on chin", chin),
        comparison.Compared(2, "fit 2: power_law on chin", power),
    ]


@pytest.fixture(scope="module")
def allocation(data: pd.DataFrame, items: list[comparison.Compared]) -> dict[str, Any]:
    from fitting.analyses.allocation_report import allocation_report

    return allocation_report(data, [1e21, 5.76e23], result=items[0].result, bootstrap=50)


# --- publish ------------------------------------------------------------------------------


def test_styled_ticks_log_axes_at_decades_and_keeps_the_original() -> None:
    fig = go.Figure(go.Scatter(x=[1e6, 1e8, 1e10], y=[3.6, 2.5, 1.9], name="a"))
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    out = publish.styled(fig)
    x, y = out.layout.xaxis, out.layout.yaxis
    assert x.dtick == 1 and x.exponentformat == "power" and x.minor.dtick == "D1"
    # 1.9 to 3.6 is under a decade: round values at full size, covering the data.
    assert list(y.tickvals) == [1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    assert x.tickfont.size == 14 and out.layout.font.size == 14
    assert out.layout.legend.orientation == "h" and out.layout.legend.y < 0
    assert out.layout.plot_bgcolor == "white" and out.layout.paper_bgcolor == "white"
    assert fig.layout.xaxis.dtick is None and fig.layout.legend.orientation is None


def test_styled_reaches_every_subplot_axis() -> None:
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1)
    fig.add_trace(go.Scatter(x=[1, 2], y=[1e-4, 1e-1]), row=1, col=1)
    fig.add_trace(go.Scatter(x=[1, 2], y=[2.0, 3.0]), row=2, col=1)
    fig.update_yaxes(type="log")
    out = publish.styled(fig)
    assert out.layout.yaxis.dtick == 1  # three decades
    assert list(out.layout.yaxis2.tickvals)[:2] == [2.0, 2.2]  # the second panel's own span
    assert out.layout.xaxis2.showline and out.layout.yaxis2.tickfont.size == 14


def test_styled_replaces_the_template_and_keeps_the_figures_own_settings() -> None:
    import plotly.io as pio

    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name="a"))
    fig.update_layout(template="plotly_dark", margin={"l": 5, "b": 40}, legend={"x": 0.3})
    fig.update_xaxes(title={"text": "step"}, range=[0, 3])
    out = publish.styled(fig)
    simple = go.Figure(layout={"template": "simple_white"}).layout.template
    # The figure's template is swapped for simple_white, nothing of the dark one merged in.
    assert out.layout.template.to_plotly_json() == simple.to_plotly_json()
    assert (
        out.layout.template.layout.paper_bgcolor
        != pio.templates["plotly_dark"].layout.paper_bgcolor
    )
    assert out.layout.margin.l == 5 and out.layout.margin.b == 110  # room for the legend
    assert out.layout.legend.x == 0.0 and out.layout.legend.orientation == "h"
    assert out.layout.xaxis.title.text == "step" and out.layout.xaxis.title.font.size == 16
    assert tuple(out.layout.xaxis.range) == (0, 3)
    assert fig.layout.margin.b == 40 and fig.layout.xaxis.title.font.size is None


def test_the_figure_browser_closes_when_idle_and_comes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if publish.export_problem():
        pytest.skip(f"no figure export here: {publish.export_problem()}")
    monkeypatch.setattr(publish, "BROWSER_IDLE_S", 120.0)
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
    try:
        assert publish.image_bytes(fig, "png").startswith(b"\x89PNG")
        assert publish.browser_open() and publish._IDLE["timer"].interval == 120.0
        publish._close_idle(publish._IDLE["generation"] - 1)  # armed before the last render
        assert publish.browser_open()
        publish._close_idle(publish._IDLE["generation"])  # what the timer does when it fires
        assert not publish.browser_open()
        assert publish.image_bytes(fig, "svg").lstrip().startswith(b"<svg")
        assert publish.browser_open()
    finally:
        publish._IDLE["timer"].cancel()
        publish._close_idle(publish._IDLE["generation"])


def test_file_stem_keeps_names_safe() -> None:
    assert publish.file_stem("fit 3: chinchilla/../x") == "fit-3-chinchilla-..-x"
    assert publish.file_stem("../") == "figure"


# --- share --------------------------------------------------------------------------------


def test_share_reads_forgivingly_and_round_trips() -> None:
    assert share.decode_ids("3, 7,x,3,-1,0,12") == [3, 7, 12]
    assert share.decode_ids(None) == []
    assert share.decode_ids(share.encode_ids([5, 2])) == [5, 2]
    for bad in ("nan", "inf", "-5", "0", "1e", None):
        assert share.decode_number(bad) is None, bad
    assert share.decode_number(share.encode_number(5.76e23)) == 5.76e23


# --- comparison ---------------------------------------------------------------------------


def test_axes_follow_the_law(items: list[comparison.Compared]) -> None:
    assert comparison.loss_axis(items[0].result) == "flops"  # L(N, D): along the frontier
    assert comparison.loss_axis(items[1].result) == "params"


def test_table_answers_are_the_fits_own(items: list[comparison.Compared]) -> None:
    from fitting import analyses

    table = comparison.answers_table(items, AT)
    chin, power = items[0].result, items[1].result
    row = table.iloc[0]
    point = pd.DataFrame({"params": [AT["N"]], "tokens": [AT["D"]]})
    assert row["loss"] == pytest.approx(float(chin.predict(point)[0]), rel=1e-12)
    assert row["loss lo"] < row["loss"] < row["loss hi"]
    opt = analyses.compute_optimal(chin, AT["C"])
    assert row["N_opt"] == pytest.approx(float(opt["N_opt"][0]), rel=1e-12)
    assert row["N_opt lo"] < row["N_opt"] < row["N_opt hi"]
    assert row["D_opt"] == pytest.approx(AT["C"] / (6 * row["N_opt"]), rel=1e-9)
    other = table.iloc[1]
    expected = float(power.predict(pd.DataFrame({"params": [AT["N"]]}))[0])
    assert other["loss"] == pytest.approx(expected, rel=1e-12) and other["loss at"] == "N=3e+09"
    assert np.isnan(other["N_opt"])  # a law of N alone has no allocation


def test_beyond_the_data_is_flagged_beside_the_answer(items: list[comparison.Compared]) -> None:
    far = comparison.answers_table(items, {"N": 1e13, "D": 6e10, "C": 1e21})
    assert "beyond the data: params" in far.iloc[0]["flags"]
    assert "beyond the data" not in comparison.answers_table(items, AT).iloc[0]["flags"]


def test_allocation_approaches_join_the_table_at_their_budgets(
    items: list[comparison.Compared], allocation: dict[str, Any]
) -> None:
    table = comparison.answers_table(items, AT, allocation)
    rows = table[table["compared"].str.startswith("Approach")]
    assert rows["compared"].str[9].tolist() == ["1", "2", "3"]
    parametric = rows.iloc[2]
    # Approach 3 on the same fit is the fit's own compute-optimal answer.
    assert parametric["N_opt"] == pytest.approx(table.iloc[0]["N_opt"], rel=1e-6)
    off = comparison.answers_table(items, {**AT, "C": 3e21}, allocation)
    assert off["flags"].str.contains("C=3e\\+21 is not among the report's budgets").sum() == 3


def test_figures_draw_each_fit_with_its_band(
    items: list[comparison.Compared], allocation: dict[str, Any]
) -> None:
    loss = comparison.loss_figure([items[0]], "flops")
    names = [t.name for t in loss.data]
    assert names == [
        "fit 1: chinchilla on chin (at N_opt(C)): band upper",
        "fit 1: chinchilla on chin (at N_opt(C)): band",
        "fit 1: chinchilla on chin (at N_opt(C))",
    ]
    band_lo, line = np.asarray(loss.data[1].y), np.asarray(loss.data[2].y)
    assert (band_lo <= line).all()
    frontier = comparison.frontier_figure(items, allocation)
    traces = [t.name for t in frontier.data]
    assert "fit 1: chinchilla on chin" in traces  # the power law has no frontier
    assert sum(name.startswith("Approach") for name in traces) == 3


def _chart_page() -> None:
    import plotly.graph_objects as go

    from app.dashboard import publish

    publish.chart(go.Figure(go.Scatter(x=[1, 10], y=[2, 1])), key="c", name="fig 1")


def test_chart_offers_png_and_svg_or_says_why_not(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    publish.export_problem.cache_clear()
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")  # a slim image's server
    at = AppTest.from_function(_chart_page).run()
    assert not at.exception
    assert "not an executable Chromium" in at.caption[0].value
    assert "camera in the chart's toolbar saves a PNG" in at.caption[0].value
    assert not at.get("download_button")
    publish.export_problem.cache_clear()
    monkeypatch.delenv("BROWSER_PATH")
    if publish.export_problem() is not None:
        pytest.skip(f"no figure export here: {publish.export_problem()}")
    at = AppTest.from_function(_chart_page).run()
    buttons = at.get("download_button")
    assert [b.proto.label for b in buttons] == ["PNG", "SVG"]
    publish.export_problem.cache_clear()


def test_a_saved_report_reads_as_the_computed_one(allocation: dict[str, Any]) -> None:
    """The JSON `scalinglab allocate --json` writes (non-finite numbers as strings)."""
    import json

    from fitting.result import jsonable

    saved = json.loads(json.dumps(jsonable(allocation), allow_nan=False))
    fresh, reread = (
        comparison.approach_rows(allocation, 1e21),
        comparison.approach_rows(saved, 1e21),
    )
    assert [r["N_opt"] for r in reread] == [r["N_opt"] for r in fresh]
    assert len(comparison.frontier_figure([], saved).data) == 3
