"""In a real browser, the Fit page by law kind (issue 15): chinchilla on the Chinchilla
data (Besiroglu et al. 2024's digitisation of Hoffmann et al. 2022) shows IsoFLOP slices,
the compute-optimal frontier with its band and predicted against observed; a curve law
on Luo et al. 2025's curves shows both bands; a long fit shows its progress and cancels;
the URL reopens the fit."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import ARTIFACTS, screenshot, wait_idle
from tests.e2e.harness import Server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
LONG_MS = 120_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> object:
    """Two projects: `chin` (the 245 Chinchilla models) and `luo` (the 25M model's three
    training curves of Luo et al., with their schedules)."""
    from fitting.schedules import ScheduleSpec
    from store.core import Store
    from store.importers import import_files
    from store.runfacts import set_facts
    from tests.published import CHINCHILLA, LUO_25M, LUO_TRAIN

    store = Store(tmp_path_factory.mktemp("e2e-fit-views") / "store")
    import_files(store, [CHINCHILLA], project="chin")
    import_files(store, [LUO_25M / f"{name}.csv" for name in LUO_TRAIN], project="luo")
    schedules = {name: {"schedule": ScheduleSpec.luo2025(name).to_json()} for name in LUO_TRAIN}
    set_facts(store, "luo", schedules)
    srv = Server(store.root)
    yield srv
    srv.stop()


def legends(pg: object) -> list[list[str]]:
    """The legend entries of every chart on the page (Plotly draws them as SVG text)."""
    charts = pg.locator('[data-testid="stPlotlyChart"]')  # type: ignore[attr-defined]
    charts.first.locator(".legendtext").first.wait_for()
    return [c.locator(".legendtext").all_text_contents() for c in charts.all()]


def chart_with(pg: object, entry: str, shot: str | None = None) -> list[str]:
    """The legend of the chart that has ``entry`` (a regular expression); with ``shot``,
    that chart's screenshot into test-artifacts/ (the page scrolls inside the app, so a
    page screenshot shows its top only)."""
    for i, legend in enumerate(legends(pg)):
        if any(re.fullmatch(entry, text) for text in legend):
            if shot:
                ARTIFACTS.mkdir(exist_ok=True)
                chart = pg.locator('[data-testid="stPlotlyChart"]').nth(i)  # type: ignore[attr-defined]
                chart.scroll_into_view_if_needed()
                chart.screenshot(path=str(ARTIFACTS / f"{shot}.png"))
            return legend
    raise AssertionError(f"no chart with a legend entry {entry!r}: {legends(pg)}")


def pick(pg: object, label: str, option: str) -> None:
    """Choose ``option`` in the selectbox labelled ``label`` (main area or sidebar)."""
    pg.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()  # type: ignore[attr-defined]
    pg.get_by_role("option", name=option, exact=True).click()  # type: ignore[attr-defined]
    wait_idle(pg)


def full_result(pg: object, method: str) -> None:
    """Until the fit's full result (its method named) is drawn and the script has ended."""
    # .first: while a rerun redraws, the old (stale) copy may still be on the page.
    pg.get_by_text(re.compile(rf"Standard errors and intervals: {method}")).first.wait_for(  # type: ignore[attr-defined]
        timeout=LONG_MS
    )
    wait_idle(pg, LONG_MS)


def test_chinchilla_shows_isoflop_slices_frontier_and_predicted_vs_observed(
    server: Server, page: object, browser: object
) -> None:
    pg = page
    pg.goto(f"{server.url}/fit")
    wait_idle(pg)
    pick(pg, "Project", "chin")
    pick(pg, "Law", "chinchilla")
    boot = pg.get_by_role("spinbutton", name="Bootstrap resamples")
    boot.fill("100")
    boot.press("Enter")
    wait_idle(pg)
    pg.get_by_role("button", name="Fit", exact=True).click()
    full_result(pg, "bootstrap, 100 resamples")
    # IsoFLOP slices: several budgets, each with its data and its fitted curve.
    slices = chart_with(pg, r"C = \S+ data", shot="fit-isoflop-slices")
    budgets = {t[: -len(" data")] for t in slices if t.endswith(" data")}
    fitted = {t[: -len(" fit")] for t in slices if t.endswith(" fit")}
    assert len(budgets) >= 4 and budgets == fitted, slices
    # The frontier with its band, which names where the band comes from.
    frontier = chart_with(pg, r"N_opt\(C\) of the fit", shot="fit-frontier")
    assert "95% band of N_opt" in frontier, frontier
    assert "Band: bootstrap percentiles of the fit's refits" in pg.inner_text("body")
    observed = chart_with(pg, "y = x", shot="fit-predicted-observed")
    assert "fitted points" in observed, observed
    screenshot(pg, "fit-chinchilla-views")

    # The URL holds the view: a new session on it fits the same and draws the same.
    url = pg.url
    for part in ("project=chin", "law=chinchilla", "boot=100", "fit=1"):
        assert part in url, url
    other = browser.new_context(viewport={"width": 1400, "height": 1800})  # type: ignore[attr-defined]
    try:
        again = other.new_page()
        again.set_default_timeout(30_000)
        again.goto(url)
        full_result(again, "bootstrap, 100 resamples")
        assert chart_with(again, r"C = \S+ data")
        assert again.get_by_role("spinbutton", name="Bootstrap resamples").input_value() == "100"
        screenshot(again, "fit-url-reopened")
    finally:
        other.close()


def test_a_curve_law_shows_both_bands(server: Server, page: object) -> None:
    pg = page
    pg.goto(f"{server.url}/fit?project=luo&law=multi_power&fit=1")
    full_result(pg, "robust sandwich")
    curves = chart_with(pg, r"\S+ fit", shot="fit-curve-bands-chart")
    assert "95% confidence band (the law)" in curves, curves
    assert "95% prediction band (a new run)" in curves, curves
    assert {"cosine_24000 fit", "constant_24000 fit", "wsdcon_9 fit"} <= set(curves)
    screenshot(pg, "fit-curve-bands")


def test_a_long_fit_shows_progress_and_cancels(server: Server, page: object) -> None:
    pg = page
    # 5,000 bootstrap refits of the multi-power law: minutes, unless cancelled.
    pg.goto(f"{server.url}/fit?project=luo&law=multi_power&intervals=bootstrap&boot=5000&fit=1")
    bar = pg.locator('[data-testid="stProgress"]')
    bar.get_by_text(re.compile(r"bootstrap resamples: \d+ of 5000")).wait_for(timeout=LONG_MS)
    # The point estimate with its quick intervals is already drawn meanwhile.
    pg.get_by_text(re.compile("Point estimate with quick intervals")).wait_for()
    screenshot(pg, "fit-progress")
    pg.get_by_role("button", name="Cancel").click()
    pg.get_by_text(re.compile(r"Fit cancelled during bootstrap")).wait_for(timeout=LONG_MS)
    wait_idle(pg, LONG_MS)
    assert bar.count() == 0
    screenshot(pg, "fit-cancelled")
    # A new fit starts at once (here with the quick method) and finishes.
    pick(pg, "Intervals", "robust sandwich")
    pg.get_by_role("button", name="Fit", exact=True).click()
    # The cancelled fit's quick result stays until the new one replaces it (and it also
    # names the sandwich): wait for it to go first.
    quick = pg.get_by_text(re.compile("Point estimate with quick intervals"))
    quick.wait_for(state="detached", timeout=LONG_MS)
    full_result(pg, "robust sandwich")
    body = pg.inner_text("body")
    assert "Fit cancelled" not in body and "Point estimate with quick intervals" not in body
