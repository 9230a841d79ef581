"""In a real browser: the Fit page names the method of its intervals, draws both bands by
name and says what each is; the Predict page shows both bands of a saved fit. (The flags
column lives in a canvas-drawn table: tests/app/test_pages_uncertainty.py checks it.)"""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import screenshot, wait_idle
from tests.e2e.harness import Server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> object:
    from tests.app.builders import build_store

    root = tmp_path_factory.mktemp("e2e-bands") / "store"
    build_store(root)
    srv = Server(root)
    yield srv
    srv.stop()


def test_fit_and_predict_pages_name_the_method_the_bands_and_the_flags(
    server: Server, page: object
) -> None:
    pg = page
    pg.goto(f"{server.url}/fit")
    wait_idle(pg)
    pg.get_by_role("button", name="Fit", exact=True).click()
    pg.get_by_text(re.compile(r"Standard errors and intervals: bootstrap")).wait_for(timeout=60_000)
    wait_idle(pg, 60_000)
    # Plotly draws its legend in SVG: one <text class="legendtext"> per entry.
    entries = pg.locator('[data-testid="stPlotlyChart"]').first.locator(".legend .legendtext")
    entries.first.wait_for()
    legend = entries.all_text_contents()
    assert "95% confidence band (the law)" in legend, legend
    assert "95% prediction band (a new run)" in legend, legend
    assert "prediction band is where a new observation should fall" in pg.inner_text("body")
    screenshot(pg, "fit-bands")
    pg.get_by_role("button", name="Save fit").click()
    pg.get_by_text(re.compile(r"Saved as fit \d+")).wait_for()

    pg.goto(f"{server.url}/predict")
    wait_idle(pg)
    pg.get_by_text(re.compile(r"Intervals and bands: bootstrap")).wait_for()
    body = pg.inner_text("body")
    assert "95% confidence band (the law)" in body and "95% prediction band (a new run)" in body
    screenshot(pg, "predict-bands")
