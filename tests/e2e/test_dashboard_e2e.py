"""End to end in a real browser: upload a CSV, fit power_law, see the parameters and the
plot; a screenshot of every page lands in test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import screenshot, wait_idle
from tests.e2e.harness import Server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIZES = (1e5, 3e5, 1e6, 3e6, 1e7, 3e7)


def write_csv(path: Path) -> Path:
    """Final eval losses of six models on L = 2 + (1e4 / N)^0.3, plus a short train curve."""
    lines = ["run,step,split,loss,params,tokens"]
    for n in SIZES:
        final = 2.0 + (1e4 / n) ** 0.3
        for step in (10, 20, 40):
            lines.append(f"m{int(n)},{step},train,{final + 1.0 / step:.6f},{int(n)},{step * 1000}")
        lines.append(f"m{int(n)},40,eval,{final:.6f},{int(n)},40000")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> object:
    srv = Server(tmp_path_factory.mktemp("e2e") / "store")
    yield srv
    srv.stop()


def test_health_endpoint_answers(server: Server) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=5) as resp:
        assert resp.status == 200 and resp.read().strip() == b"ok"


def test_upload_fit_and_see_parameters_and_plot(
    server: Server, page: object, tmp_path: Path
) -> None:
    pg = page
    pg.goto(f"{server.url}/upload")
    wait_idle(pg)
    pg.locator('input[type="file"]').set_input_files(str(write_csv(tmp_path / "curves.csv")))
    pg.get_by_text("Detected format").wait_for()
    confirm = pg.get_by_role("button", name=re.compile(r"^Import 1 file"))
    confirm.wait_for()
    wait_idle(pg)
    screenshot(pg, "upload")
    confirm.click()
    pg.get_by_text("Imported into 'uploads'").wait_for()

    pg.goto(f"{server.url}/")
    wait_idle(pg)
    pg.locator('[data-testid="stPlotlyChart"]').first.wait_for()
    screenshot(pg, "runs")

    pg.goto(f"{server.url}/fit")
    wait_idle(pg)
    pg.get_by_role("button", name="Fit", exact=True).click()
    pg.get_by_text(re.compile(r"L_inf\s*=")).first.wait_for(timeout=60_000)
    pg.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
    body = pg.inner_text("body")
    value = float(re.search(r"L_inf\s*=\s*([0-9.]+)", body).group(1))
    assert abs(value - 2.0) < 0.1
    assert "alpha" in body and "x0" in body
    wait_idle(pg)
    screenshot(pg, "fit")
    pg.get_by_role("button", name="Save fit").click()
    pg.get_by_text(re.compile(r"Saved as fit \d+")).wait_for()

    pg.goto(f"{server.url}/predict")
    wait_idle(pg)
    pg.get_by_text("Predicted loss").first.wait_for()
    wait_idle(pg)
    screenshot(pg, "predict")

    pg.goto(f"{server.url}/jobs")
    wait_idle(pg)
    pg.get_by_text("Create a job").wait_for()
    screenshot(pg, "jobs")


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> object:
    from tests.app.builders import build_store

    root = tmp_path_factory.mktemp("e2e-filled") / "store"
    build_store(root, running=("n10000000",))
    srv = Server(root)
    yield srv
    srv.stop()


# "jobs" first: a fresh server's first request for a sub-page must get the app's own
# navigation, not a folder Streamlit discovered by itself.
@pytest.mark.parametrize("path", ["jobs", "", "upload", "fit", "predict"])
def test_every_page_renders_without_an_error(filled: Server, page: object, path: str) -> None:
    page.goto(f"{filled.url}/{path}")
    wait_idle(page)
    page.locator("h1").first.wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0, page.inner_text("body")
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
    assert "Runs" in nav and "Predict" in nav and "streamlit app" not in nav, nav
    screenshot(page, f"page-{path or 'runs'}")
