"""Fit reports (app/dashboard/report.py) on a real fit of the shipped Chinchilla points
(Besiroglu et al. 2024's digitisation): every item of Li et al.'s (Mis)Fitting checklist
answered from the fit itself, figures embedded, user text escaped."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from typing import Any

import pandas as pd
import pytest

from app.dashboard import report
from tests.fitting.conftest import chinchilla_frame
from tests.published import MISFITTING_CHECKLIST as ITEMS

EVIL_RUN = "<img src=x onerror=alert(1)>![t](http://tracker.example/p.png)"
EVIL_PROJECT = "<script>alert('p')</script> [home](javascript:alert(1))"


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    frame = chinchilla_frame()
    frame.loc[0, "run"] = EVIL_RUN  # a run name as an upload could carry it
    return frame


@pytest.fixture(scope="module")
def fit(data: pd.DataFrame) -> Any:
    import fitting

    # One run left out by name (the selection records it), the extrapolation test run.
    return fitting.fit(
        "chinchilla",
        data,
        exclude=[EVIL_RUN],
        bootstrap=60,
        seed=0,
        accounting={"flops": "6ND", "params": "total"},
        extrapolation=True,
    )


def _items(text: str) -> dict[str, str]:
    """The checklist of a Markdown report: item -> answer (escapes undone)."""
    out = {}
    for item, answer in re.findall(r"^- \*\*(.+?)\*\*: (.*)$", text, flags=re.M):
        out[item] = re.sub(r"\\(.)", r"\1", answer)
    return out


def test_markdown_answers_every_checklist_item_from_the_fit(fit: Any) -> None:
    text = report.markdown(fit, source=report.Source(fit_id=7, project="chin"))
    items = _items(text)
    assert tuple(items) == ITEMS
    assert items["Functional form"] == "chinchilla: L = E + A / N^alpha + B / D^beta"
    assert items["How N and C were counted"] == "C = 6 N D; N counts all parameters"
    # 240 points in the frame, one left out by name: 239 fitted, and why the other is not.
    assert fit.n_points == 239
    assert items["Points used"].startswith("239 points (239 of 240 rows")
    assert "left out by hand: " + EVIL_RUN in items["Points excluded"]
    assert items["Objective"] == (
        "sum of Huber losses (delta = 0.001) of residuals in log loss "
        "(log observed - log predicted)"
    )
    assert "L-BFGS-B polish of the best 4 distinct optima" in items["Optimiser"]
    # Hoffmann et al.'s grid (4,500 starts) plus the law's guess.
    assert items["Starts"].startswith(f"{fit.n_starts} starts: the law's grid")
    assert fit.n_starts == 4501
    assert items["Interval method"].startswith("95% intervals, bootstrap, 60 resamples")
    test = fit.checks["extrapolation"]
    assert f"mean relative error {test['mean_rel_error']:.3%}" in items["Extrapolation test"]
    assert f"refit without the {test['n_heldout']} point(s)" in items["Extrapolation test"]


def test_markdown_carries_hash_options_and_parameters(fit: Any) -> None:
    from fitting.result import jsonable

    text = report.markdown(fit, source=report.Source(fit_id=7, project="chin"))
    assert f"`{fit.data_hash}`" in text and len(fit.data_hash) == 64
    options = re.search(r"## Options\n\n```json\n(.*?)\n```", text, flags=re.S)
    assert options is not None
    assert json.loads(options.group(1)) == jsonable(fit.options)
    for name in ("E", "A", "B", "alpha", "beta"):
        row = re.search(rf"^\| {name} \| ([^|]+) \|", text, flags=re.M)
        assert row is not None, name
        assert float(row.group(1)) == pytest.approx(fit.params[name], rel=1e-5)
    # Besiroglu et al.'s replication: alpha 0.3478, beta 0.3658 (their SE 0.015, 0.021).
    assert fit.params["alpha"] == pytest.approx(0.3478, abs=0.05)


def test_an_unrun_extrapolation_test_and_no_stored_accounting_are_said(data: pd.DataFrame) -> None:
    import fitting

    plain = fitting.fit("power_law", data, x="params", bootstrap=0, intervals="curvature")
    items = _items(report.markdown(plain))
    assert items["Extrapolation test"].startswith("not run")
    assert items["How N and C were counted"].endswith("(none stored with the fit: the defaults)")
    assert items["Interval method"] == "95% intervals, curvature, normal quantiles" or items[
        "Interval method"
    ].startswith("95% intervals, curvature")
    assert items["Points excluded"] == "none"


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_escapes_user_text_and_fetches_nothing(fit: Any) -> None:
    page = report.html(fit, source=report.Source(fit_id=7, project=EVIL_PROJECT))
    parsed = _Collect()
    parsed.feed(page)
    names = [tag for tag, _ in parsed.tags]
    assert "script" not in names
    assert not [a for t, a in parsed.tags if t == "img" and "onerror" in a]
    text = "".join(parsed.text)
    assert EVIL_PROJECT in text and EVIL_RUN in text  # shown, as text
    csp = [a for t, a in parsed.tags if t == "meta" and a.get("http-equiv")]
    assert csp and "default-src 'none'" in (csp[0]["content"] or "")
    for item in ITEMS:
        assert f"<dt>{item}</dt>" in page


def test_markdown_has_no_link_image_or_html_from_user_text(fit: Any) -> None:
    from markdown_it import MarkdownIt  # CommonMark with raw HTML on: what a viewer renders

    text = report.markdown(fit, source=report.Source(project=EVIL_PROJECT))
    rendered = MarkdownIt("commonmark").render(text)
    parsed = _Collect()
    parsed.feed(rendered)
    assert not [t for t, _ in parsed.tags if t in ("a", "img", "script")], parsed.tags
    shown = "".join(parsed.text)
    assert EVIL_PROJECT in shown and EVIL_RUN in shown  # the same characters, as text


def test_figures_are_embedded_as_images_the_file_decodes(fit: Any, data: pd.DataFrame) -> None:
    from app.dashboard import publish, reportview

    if publish.export_problem() is not None:
        pytest.skip(f"no figure export here: {publish.export_problem()}")
    frame = data[data["run"] != EVIL_RUN]
    page = reportview.build(fit, frame, "html", source=report.Source(fit_id=7))
    uris = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', page)
    assert len(uris) == 2  # the fit with its bands, the residuals
    svg = base64.b64decode(uris[0]).decode("utf-8")
    assert svg.startswith("<svg") and "95% confidence band (the law)" in svg
    text = reportview.build(fit, frame, "md")
    pngs = re.findall(r"!\[Figure \d\]\(data:image/png;base64,([^)]+)\)", text)
    assert len(pngs) == 2 and base64.b64decode(pngs[0])[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_chromium_the_report_still_downloads_and_says_why(
    fit: Any, data: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.dashboard import publish, reportview

    publish.export_problem.cache_clear()
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")  # the slim Docker image
    try:
        page = reportview.build(fit, data, "html")
    finally:
        publish.export_problem.cache_clear()
    assert "<img" not in page and "<dt>Extrapolation test</dt>" in page
    assert "Figures not embedded: the server cannot render them" in page
