"""The Runs page in a real browser, on published data: Luo et al.'s loss curves get an LR
panel sharing their log x axis; the Chinchilla table of final losses is plotted against
N (coloured by C) and D (coloured by N) on sensible log axes, with the compute-optimal
frontier of a saved chinchilla fit; a copied link reopens the same view.

Plotly keeps what it drew on its graph div (`gd.data`, `gd._fullLayout`): the checks read
those and the SVG. Screenshots land in test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.conftest import screenshot, wait_idle
from tests.e2e.harness import Server
from tests.published import CHINCHILLA, LUO_25M

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LUO_RUNS = ("constant_24000", "cosine_24000", "wsdcon_9")
CHART = '[data-testid="stPlotlyChart"]'
# What the page's first chart drew: its traces and its axes, from Plotly's graph div.
DRAWN = """() => {
  const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
  if (!gd || !gd._fullLayout || !gd._fullData) return {xaxis: null};
  const fl = gd._fullLayout;
  const axis = (a) => a && {type: a.type, range: a.range, title: a.title && a.title.text,
                            matches: a.matches || null};
  const many = (v) => Array.isArray(v) || ArrayBuffer.isView(v);
  return {
    traces: gd._fullData.map((t) => ({name: t.name, n: (t.x || []).length, yaxis: t.yaxis || 'y',
        x: Array.from(t.x || []), y: Array.from(t.y || []),
        colour: t.marker && many(t.marker.color) ? Array.from(t.marker.color) : null,
        colourbar: t.marker && t.marker.colorbar && t.marker.colorbar.title
            ? t.marker.colorbar.title.text : null})),
    xaxis: axis(fl.xaxis), yaxis: axis(fl.yaxis), xaxis2: axis(fl.xaxis2), yaxis2: axis(fl.yaxis2),
  };
}"""


@pytest.fixture(scope="module")
def store_with_fit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    from fitting import persist
    from fitting.jobs import fit_selection
    from store import Store
    from store.importers import import_files

    root = tmp_path_factory.mktemp("e2e-runs") / "store"
    store = Store(root)
    import_files(store, [CHINCHILLA], project="chinchilla")
    import_files(store, [LUO_25M / f"{run}.csv" for run in LUO_RUNS], project="luo")
    options = {"bootstrap": 40, "seed": 0}
    result, _ = fit_selection(store, "chinchilla", "chinchilla", None, options)
    fit_id = persist.save_result(store, result, "chinchilla", {"reduce": "final"})
    return root, fit_id


@pytest.fixture(scope="module")
def server(store_with_fit: tuple[Path, int]) -> Iterator[Server]:
    srv = Server(store_with_fit[0])
    yield srv
    srv.stop()


def open_runs(page: Any, url: str, ready: Any = None) -> dict[str, Any]:
    """Open `url` and read the chart once it is drawn (and `ready(drawn)` holds): a busy
    server may show the chart before its last panel arrives."""
    page.goto(url)
    wait_idle(page)
    page.locator(f"{CHART} .main-svg").first.wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0, page.inner_text("body")
    for _ in range(150):
        drawn = page.evaluate(DRAWN)
        if drawn["xaxis"] is not None and (ready is None or ready(drawn)):
            return drawn
        page.wait_for_timeout(200)
        wait_idle(page)
    raise AssertionError(f"the chart was not drawn as expected: {drawn}")


def redrawn(page: Any, action: Any, changed: Any) -> dict[str, Any]:
    """Do `action`, then poll the chart until `changed(drawn)` holds (no fixed sleeps)."""
    action()
    for _ in range(150):
        wait_idle(page)
        drawn = page.evaluate(DRAWN)
        if changed(drawn):
            return drawn
        page.wait_for_timeout(200)
    raise AssertionError(f"the chart did not change: {drawn['xaxis']}")


def wait_url(page: Any, pattern: str) -> str:
    page.wait_for_url(re.compile(pattern), timeout=30_000)
    return str(page.url)


def test_curves_have_an_lr_panel_sharing_the_log_x_axis(server: Server, page: Any) -> None:
    drawn = open_runs(
        page, f"{server.url}/?runs-project=luo", ready=lambda d: d["xaxis2"] is not None
    )
    assert drawn["xaxis"]["type"] == drawn["xaxis2"]["type"] == "log"
    assert drawn["yaxis"]["type"] == "log" and drawn["xaxis"]["matches"] == "x2"  # shared x
    assert drawn["yaxis2"]["title"] == "learning rate"
    lr = [t for t in drawn["traces"] if t["yaxis"] == "y2"]
    assert sorted(t["name"] for t in lr) == [f"{run} · lr" for run in LUO_RUNS]
    # Luo et al.'s 25M runs peak at 3e-4; the cosine decays towards 3e-5 by step 24,000.
    peak = {t["name"].split(" ")[0]: (max(t["y"]), min(t["y"])) for t in lr}
    assert peak["constant_24000"] == pytest.approx((3e-4, 3e-4))
    assert peak["cosine_24000"][0] == pytest.approx(3e-4, rel=0.01)
    assert peak["cosine_24000"][1] < 0.2 * 3e-4
    # The SVG holds the second subplot with one line per run.
    assert page.locator(f"{CHART} .cartesianlayer .subplot.x2y2 .scatterlayer .trace").count() == 3
    assert "learning rate" in (page.locator(f"{CHART} .g-y2title").text_content() or "")
    screenshot(page, "runs-curves-lr")


def test_final_losses_of_chinchilla_against_n_and_d_with_the_frontier(
    server: Server, page: Any, store_with_fit: tuple[Path, int]
) -> None:
    from fitting.analyses import compute_optimal
    from fitting.persist import load_result
    from store import Store

    root, fit_id = store_with_fit
    drawn = open_runs(page, f"{server.url}/?runs-project=chinchilla")
    assert "auto: final losses (245 of 245 runs" in page.inner_text("body")
    (points,) = [t for t in drawn["traces"] if t["colour"] is not None]
    assert points["n"] == 245 and points["colourbar"] == "training FLOPs (C)"
    # Colour: log10 C of Hoffmann et al.'s budgets, 1.4e18 to 1.3e22 FLOPs.
    assert min(points["colour"]) == pytest.approx(np.log10(1.397e18), abs=0.01)
    assert max(points["colour"]) == pytest.approx(np.log10(1.2956e22), abs=0.01)
    x, y = drawn["xaxis"], drawn["yaxis"]
    assert x["type"] == y["type"] == "log" and x["title"] == "parameters (N)"
    # The axes fit the points (N 5.7e7-1.6e10, loss 2.0-5.0), not 0.1-10,000.
    assert 10 ** x["range"][0] > 3e7 and 10 ** x["range"][1] < 3e10
    assert 10 ** y["range"][0] > 1.5 and 10 ** y["range"][1] < 6.0
    assert page.locator(f"{CHART} .scatterlayer .trace .points path").count() >= 245
    # The frontier is the saved fit's own compute optimum over the plotted budgets.
    (line,) = [
        t for t in drawn["traces"] if t["name"] == f"compute-optimal frontier (fit {fit_id})"
    ]
    want = compute_optimal(load_result(Store(root), fit_id), np.array([1.397236742943068e18]))
    assert line["x"][0] == pytest.approx(want["N_opt"][0], rel=1e-6)
    assert line["y"][0] == pytest.approx(want["loss"][0], rel=1e-6)
    band = f"compute-optimal frontier (fit {fit_id}): 95% band"
    assert {t["name"] for t in drawn["traces"] if "95% band" in t["name"]} == {
        band,
        f"{band} upper",
    }
    legend = page.locator(f"{CHART} .legend .legendtext").all_text_contents()
    assert f"compute-optimal frontier (fit {fit_id})" in legend
    screenshot(page, "runs-final-chinchilla-N")

    page.get_by_text("D", exact=True).click()
    drawn = redrawn(page, lambda: None, lambda d: d["xaxis"]["title"] == "training tokens (D)")
    (points,) = [t for t in drawn["traces"] if t["colour"] is not None]
    assert points["colourbar"] == "parameters (N)"
    assert min(points["colour"]) == pytest.approx(np.log10(5.7334197e7), abs=0.01)
    assert 10 ** drawn["xaxis"]["range"][0] > 1e8 and 10 ** drawn["xaxis"]["range"][1] < 1e12
    wait_url(page, r"runs-fx=D")
    screenshot(page, "runs-final-chinchilla-D")


def test_a_link_reopens_the_same_view(server: Server, page: Any, browser: Any) -> None:
    picks = "&".join(f"runs-pick={run}" for run in ("cosine_24000", "wsdcon_9"))
    drawn = open_runs(page, f"{server.url}/?runs-project=luo&{picks}")
    lr = sorted(t["name"] for t in drawn["traces"] if t["yaxis"] == "y2")
    assert lr == ["cosine_24000 · lr", "wsdcon_9 · lr"]  # the picks, read from the URL
    page.get_by_text("log y", exact=True).click()
    link = wait_url(page, r"runs-logy=false")
    assert "runs-project=luo" in link and link.count("runs-pick=") == 2

    other = browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
    try:
        again = open_runs(other, link)
        assert again["yaxis"]["type"] == "linear" and again["xaxis"]["type"] == "log"
        # Luo's runs, not the first project's (chinchilla): the project came from the link.
        assert sorted(t["name"] for t in again["traces"] if t["yaxis"] == "y2") == lr
        screenshot(other, "runs-url-reopened")
    finally:
        other.context.close()

    # Following all runs again drops the picks from the link.
    page.get_by_text(re.compile(r"^Plot all runs")).click()
    page.wait_for_function("!window.location.search.includes('runs-pick=')", timeout=30_000)
