"""End to end in a real browser: on the Fit page, leave a point out and see the fitted
parameters change (issue 13: a click on a point, or the exclusion list)."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import screenshot, wait_idle
from tests.e2e.harness import Server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIZES = (1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A store with seven final losses on L = 2 + (1e4 / N)^0.3, the largest one off the
    law by +0.3 (an outlier worth leaving out)."""
    from store.core import Store
    from store.importers import import_files

    root = tmp_path_factory.mktemp("e2e-exclude")
    lines = ["model,params,loss"]
    for n in SIZES:
        loss = 2.0 + (1e4 / n) ** 0.3 + (0.3 if n == SIZES[-1] else 0.0)
        lines.append(f"m{int(n)},{int(n)},{loss:.6f}")
    table = root / "models.csv"
    table.write_text("\n".join(lines) + "\n")
    import_files(Store(root / "store"), [table], project="outlier")
    srv = Server(root / "store")
    yield srv
    srv.stop()


def _alpha(body: str) -> float:
    return float(re.search(r"alpha\s*=\s*([0-9.]+)", body).group(1))


def _fit_and_wait(pg: object, used: str) -> str:
    """Press Fit, wait for the fit's own report line, then for the script to finish (the
    parameters below that line may still be the previous fit's until then)."""
    pg.get_by_role("button", name="Fit", exact=True).click()
    pg.get_by_text(re.compile(rf"data: {used} rows used")).wait_for(timeout=60_000)
    wait_idle(pg, 60_000)
    return pg.inner_text("body")


def test_excluding_a_point_changes_the_parameters(server: Server, page: object) -> None:
    pg = page
    pg.goto(f"{server.url}/fit")
    wait_idle(pg)
    # Least squares: the default Huber objective is robust enough to all but ignore one
    # outlier (alpha 0.309 with it, 0.300 without), which would leave nothing to see.
    pg.locator('[data-testid="stSelectbox"]').filter(has_text="Objective").click()
    pg.get_by_role("option", name="least squares", exact=True).click()
    pg.get_by_text("Huber delta").wait_for(state="detached")
    wait_idle(pg)
    before = _alpha(_fit_and_wait(pg, "7 of 7"))
    # Leave the outlier out: pick it in the exclusion list, and fit again.
    picker = pg.locator('[data-testid="stMultiSelect"]').filter(has_text="Leave out runs")
    picker.locator("input").click()
    picker.locator("input").fill("m100000000")
    pg.keyboard.press("Enter")
    # The list stays open after a pick and hides the rest of the page from the
    # accessibility tree (so from get_by_role) until it is closed, as a user would.
    pg.keyboard.press("Escape")
    pg.get_by_role("listbox").wait_for(state="hidden")
    wait_idle(pg)
    body = _fit_and_wait(pg, "6 of 7")
    assert "dropped 1: --exclude" in body
    after = _alpha(body)
    assert abs(after - 0.3) < 0.02 and abs(after - before) > 0.02, (before, after)
    screenshot(pg, "fit-excluded")
