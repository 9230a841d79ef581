"""End to end in a real browser (issue 15): the Compare page overlays two saved fits of the
shipped Chinchilla points (two laws) with their bands, answers at a chosen N, keeps the
choice in its URL, and downloads figures (PNG, SVG) and reports with the checklist."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.e2e.conftest import screenshot, wait_idle
from tests.e2e.harness import Server
from tests.published import MISFITTING_CHECKLIST as CHECKLIST

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store holding the Chinchilla points and two saved fits of them: Chinchilla's law
    and Kaplan's, both laws of N and D (so both have a compute-optimal frontier)."""
    from fitting import persist
    from fitting.jobs import fit_selection
    from store import Store
    from store.importers import import_files
    from tests.published import CHINCHILLA

    root = tmp_path_factory.mktemp("e2e-compare") / "store"
    store = Store(root)
    import_files(store, [CHINCHILLA], project="chin")
    ids, results = [], []
    for law in ("chinchilla", "kaplan"):
        options = {"bootstrap": 60, "seed": 0, "accounting": {"flops": "6ND"}}
        result, _ = fit_selection(store, "chin", law, None, options)
        ids.append(persist.save_result(store, result, "chin"))
        results.append(result)
    srv = Server(root)
    yield {"server": srv, "ids": ids, "results": results}
    srv.stop()


def _loss_text(result: Any, n: float, d: float) -> str:
    return f"{float(result.predict(pd.DataFrame({'params': [n], 'tokens': [d]}))[0]):.4f}"


def _cells(table: Any) -> list[list[str]]:
    """The st.table's body as text, row by row."""
    return table.evaluate(
        "t => [...t.querySelectorAll('tbody tr')].map("
        "r => [...r.querySelectorAll('th, td')].map(c => c.innerText.trim()))"
    )


def _download(pg: Any, button: Any, tmp: Path) -> bytes:
    with pg.expect_download(timeout=60_000) as info:
        button.click()
    path = tmp / info.value.suggested_filename
    info.value.save_as(path)
    return path.read_bytes()


def test_compare_overlays_answers_shares_and_downloads(
    saved: dict[str, Any], page: Any, tmp_path: Path
) -> None:
    pg, srv = page, saved["server"]
    a, b = saved["ids"]
    pg.goto(f"{srv.url}/compare?fits={a},{b}&N=3e9")
    wait_idle(pg, 60_000)
    charts = pg.locator('[data-testid="stPlotlyChart"]')
    charts.nth(1).locator(".legend .legendtext").first.wait_for()
    # Both fits on the same axes, each with its band (loss along the frontier; N_opt(C)).
    for i in (0, 1):
        legend = charts.nth(i).locator(".legend .legendtext").all_text_contents()
        for label in (f"fit {a}: chinchilla on chin", f"fit {b}: kaplan on chin"):
            assert any(t.startswith(label) and t.endswith(": band") for t in legend), legend
    table = pg.locator('[data-testid="stTable"]')
    text = table.inner_text()
    assert "N=3e+09, D=2e+10" in text
    chin, kaplan = saved["results"]
    assert _loss_text(chin, 3e9, 2e10) in text and _loss_text(kaplan, 3e9, 2e10) in text
    screenshot(pg, "compare")

    # Hoffmann et al.'s three approaches on the first fit's data join the frontier and the
    # table; Approach 3 is that fit itself, so its N_opt at C is the fit's row's.
    pg.get_by_text("Allocation approaches (Hoffmann et al. 2022)").click()
    pg.get_by_role("button", name="Compute the three approaches").click()
    pg.get_by_text("Approach 2: IsoFLOP profiles").first.wait_for(timeout=60_000)
    wait_idle(pg, 60_000)
    legend = charts.nth(1).locator(".legend .legendtext").all_text_contents()
    assert sum(t.startswith("Approach ") for t in legend) == 3, legend
    rows = {row[0]: row for row in _cells(table)}
    n_opt_fit = rows[f"fit {a}: chinchilla on chin"][3]
    assert rows["Approach 3: parametric fit"][3] == n_opt_fit
    assert rows["Approach 1: envelope of training curves"][3].endswith("]")
    screenshot(pg, "compare-approaches")

    # A new N in the page goes into its URL; that URL reopens the same comparison.
    field = pg.get_by_label("N (parameters)")
    field.fill("5e9")
    field.press("Enter")
    pg.wait_for_function("() => window.location.search.includes('N=5e%2B09')", timeout=30_000)
    wait_idle(pg, 60_000)
    link = pg.url
    assert f"fits={a}%2C{b}" in link or f"fits={a},{b}" in link, link
    again = pg.context.new_page()
    again.goto(link)
    wait_idle(again, 60_000)
    reopened = again.locator('[data-testid="stTable"]').inner_text()
    assert "N=5e+09, D=2e+10" in reopened
    assert _loss_text(chin, 5e9, 2e10) in reopened and _loss_text(kaplan, 5e9, 2e10) in reopened
    screenshot(again, "compare-reopened")
    again.close()

    # The frontier figure as files: a PNG and an SVG of that figure.
    frontier = pg.locator('[data-testid="stDownloadButton"]')
    png = _download(pg, frontier.filter(has_text="PNG").nth(1), tmp_path)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    svg = _download(pg, frontier.filter(has_text="SVG").nth(1), tmp_path)
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "fit 1: chinchilla on chin" in svg.decode("utf-8")

    # The first fit's reports: the checklist, the data hash, figures embedded.
    md = _download(pg, frontier.filter(has_text="Report (Markdown)").first, tmp_path).decode()
    for item in CHECKLIST:
        assert f"**{item}**" in md, item
    assert chin.data_hash in md
    html = _download(pg, frontier.filter(has_text="Report (HTML)").first, tmp_path).decode()
    for item in CHECKLIST:
        assert f"<dt>{item}</dt>" in html, item
    assert len(re.findall(r'src="data:image/svg\+xml;base64,', html)) == 2
    screenshot(pg, "compare-downloads")
