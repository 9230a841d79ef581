"""Every dashboard page under `streamlit.testing.v1.AppTest`, against a real store in
tmp_path: the page loads, and its main widgets work (plot, upload, fit, save, job)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.dashboard.store_access import LIVE_TTL_S
from tests.app.builders import build_store

ENTRY = str(Path(__file__).resolve().parents[2] / "app" / "dashboard" / "streamlit_app.py")
TIMEOUT = 60


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    built = build_store(tmp_path / "store")
    monkeypatch.setenv("SCALINGLAB_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("SCALINGLAB_SCHEDULER", raising=False)
    return built


def open_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def press_fit(at: AppTest, timeout_s: float = 120.0) -> AppTest:
    """Press Fit and rerun once the background fit has ended (the page polls it in a
    fragment, which AppTest does not run on its own), so the result is drawn."""
    at.button(key="fit-go").click().run()
    # AppTest's session state has no get().
    run = at.session_state["fit-run"] if "fit-run" in at.session_state else None  # noqa: SIM401
    if run is not None:
        assert run.join(timeout_s), "the fit did not end"
    return at.run()


def texts(at: AppTest) -> str:
    parts = [
        e.value
        for kind in ("markdown", "success", "info", "error", "caption", "code")
        for e in at.get(kind)
        if isinstance(getattr(e, "value", None), str)
    ]
    return "\n".join(parts)


def test_runs_page_lists_runs_and_plots_the_selected(store: object) -> None:
    at = open_page()
    assert at.title[0].value == "Runs"
    assert at.sidebar.selectbox(key="runs-project").value == "demo"
    table = at.dataframe[0].value
    assert len(table) == 5 and {"N", "status", "last loss"} <= set(table.columns)
    assert len(at.get("plotly_chart")) == 1
    at.toggle(key="runs-follow-demo").set_value(False).run()
    at.multiselect(key="runs-chosen-demo").set_value(["n100000"]).run()
    at.radio(key="runs-x").set_value("tokens").run()
    assert not at.exception
    at.radio(key="export-format").set_value("parquet").run()
    at.button(key="export-go").click().run()
    name, payload = at.session_state["export"]
    assert name == "demo.parquet" and payload[:4] == b"PAR1"
    import io

    import pyarrow.parquet as pq

    exported = pq.read_table(io.BytesIO(payload))
    assert exported.num_rows == 42 and set(exported.column("run").to_pylist()) == {"n100000"}
    at.sidebar.text_input(key="runs-search").input("n3").run()
    assert len(at.dataframe[0].value) == 2
    at.sidebar.selectbox(key="runs-project").set_value("(all projects)").run()
    summary = at.dataframe[0].value
    assert list(summary["project"]) == ["demo"] and int(summary["runs"][0]) == 2


def test_runs_page_on_an_empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCALINGLAB_STORE", str(tmp_path / "empty"))
    at = open_page()
    assert "store is empty" in texts(at)


def test_upload_page_previews_then_imports_on_confirm(store: object) -> None:
    from store import queries

    at = open_page("views/upload.py")
    csv = b"run,step,loss,tokens\nup-a,1,3.0,1000\nup-a,2,2.8,2000\nup-b,1,3.1,1000\n"
    at.file_uploader(key="upload-files").set_value(("curves.csv", csv, "text/csv")).run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert "Detected format" in shown and "2 run(s)" in shown
    assert "uploads" not in queries.list_projects(store)  # nothing written before confirming
    at.button(key="upload-confirm").click().run()
    assert "Imported into 'uploads': 2 run(s), 3 point(s)" in texts(at)
    assert set(queries.list_runs(store, "uploads")["run"]) == {"up-a", "up-b"}


def test_upload_page_shows_line_and_column_of_bad_input(store: object) -> None:
    at = open_page("views/upload.py")
    bad = b"run,step,loss\na,1,3.0\na,2,oops\n"
    at.file_uploader(key="upload-files").set_value(("bad.csv", bad, "text/csv")).run()
    errors = " ".join(e.value for e in at.error)
    assert "bad.csv" in errors and "line" in errors and "loss" in errors
    assert not [b for b in at.button if b.key == "upload-confirm"]


def test_fit_page_fits_power_law_and_saves(store: object) -> None:
    from store import fits

    at = open_page("views/fit.py")
    assert at.selectbox(key="fit-law").value == "power_law"
    at.number_input(key="fit-boot").set_value(50).run()
    press_fit(at)
    assert not at.exception, at.exception
    params = at.dataframe[0].value
    assert list(params["parameter"]) == ["L_inf", "x0", "alpha"]
    l_inf = float(params.set_index("parameter").loc["L_inf", "value"])
    assert abs(l_inf - 2.0) < 0.1
    assert len(at.get("plotly_chart")) >= 2  # the fit with its band, residuals, KL
    at.button(key="fit-ext-go").click().run()
    assert not at.exception, at.exception
    assert "worst relative error" in [m.label for m in at.metric]
    at.button(key="fit-save").click().run()
    assert len(fits.list_fits(store, project="demo")) == 1


def test_predict_page_answers_with_a_saved_fit(store: object) -> None:
    from fitting import persist
    from fitting.jobs import fit_selection

    result, _ = fit_selection(store, "demo", "power_law", None, {"x": "params"})
    persist.save_result(store, result, "demo", {"reduce": "final"})
    at = open_page("views/predict.py")
    assert not at.exception, at.exception
    assert at.metric[0].label.startswith("Predicted loss")
    labels = [m.label for m in at.metric]
    assert "reducible (KL to the data)" in labels and "params needed" in labels
    at.number_input(key="pred-target").set_value(0.01).run()
    assert not at.exception, at.exception


def test_jobs_page_creates_and_pauses_a_job(store: object) -> None:
    from store import jobs

    at = open_page("views/jobs.py")
    # Inside a form, values travel with the submit click.
    at.text_input(key="job-name").input("nightly")
    at.selectbox(key="job-when").set_value("every 5 minutes")
    next(b for b in at.button if b.label == "Create job").click().run()
    assert not at.exception, at.exception
    listed = jobs.list_jobs(store)
    assert list(listed["name"]) == ["nightly"] and listed["schedule"][0] == "*/5 * * * *"
    assert listed["law"][0] == "power_law"
    assert json.loads(listed["options"][0]) == {"bootstrap": 100, "x": "params"}
    at.run()
    job_id = int(listed["id"][0])
    at.button(key=f"job-pause-{job_id}").click().run()
    assert bool(jobs.get_job(store, job_id)["paused"])


def test_upload_page_maps_unrecognised_columns(store: object) -> None:
    at = open_page("views/upload.py")
    odd = b"name,it,ce\nx,1,3.0\nx,2,2.5\n"
    at.file_uploader(key="upload-files").set_value(("odd.csv", odd, "text/csv")).run()
    assert "cannot tell the format" in " ".join(e.value for e in at.error)
    keys = {s.label: s.key for s in at.selectbox if s.key and "-map-" in s.key}
    assert set(keys) == {"name", "it", "ce"}
    for column, target in (("name", "run"), ("it", "step"), ("ce", "loss")):
        at.selectbox(key=keys[column]).set_value(target)
    at.run()
    assert not at.error and "Detected format: **long**" in texts(at)
    at.button(key="upload-confirm").click().run()
    assert "1 run(s), 2 point(s)" in texts(at)


@pytest.mark.slow
def test_predict_page_schedule_designer_with_a_curve_law(store: object) -> None:
    from fitting import persist
    from fitting.jobs import fit_selection

    selection = {"reduce": "all", "splits": ["train"], "runs": ["n100000"]}
    result, _ = fit_selection(store, "demo", "lr_annealing", selection, {})
    persist.save_result(store, result, "demo", selection)
    at = open_page("views/predict.py")
    at.number_input(key="pred-total").set_value(80).run()
    at.number_input(key="pred-warmup").set_value(5).run()
    at.number_input(key="pred-decay").set_value(20).run()
    at.selectbox(key="pred-kind").set_value("wsd").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert [m.label for m in at.metric] == ["Predicted final loss"]
    assert len(at.get("plotly_chart")) == 1


def test_jobs_page_runs_now_and_shows_the_history(store: object) -> None:
    from fitting.jobs import run_job
    from store import fits, jobs

    job_id = jobs.add_job(
        store,
        name="pl",
        project="demo",
        law="power_law",
        selection={"reduce": "final"},
        options={"x": "params"},
        schedule="on-new-data",
    )
    run_job(store, job_id)
    at = open_page("views/jobs.py")
    at.button(key=f"job-run-{job_id}").click().run()  # a background thread: no scheduler here
    deadline = time.monotonic() + 60
    while len(fits.list_fits(store, job_id=job_id)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(fits.list_fits(store, job_id=job_id)) == 2
    time.sleep(LIVE_TTL_S + 0.1)  # the job list is cached this long, by design
    at.run()
    history = at.selectbox(key=f"job-hist-{job_id}")
    assert history.options[0] == "prediction" and "L_inf" in history.options
    assert len(at.get("plotly_chart")) == 1
    assert len(at.dataframe[1].value) == 2  # one row per fit of the job


@pytest.mark.slow
def test_fit_page_fits_a_curve_law_on_train_curves(store: object) -> None:
    at = open_page("views/fit.py")
    at.selectbox(key="fit-law").set_value("lr_annealing").run()
    assert at.selectbox(key="fit-split-True").value == "train"
    assert at.radio(key="fit-reduce-True").value == "all"
    at.multiselect(key="fit-runs").set_value(["n100000"]).run()
    at.number_input(key="fit-boot").set_value(0).run()
    press_fit(at)
    assert not at.exception, at.exception
    assert list(at.dataframe[0].value["parameter"])[:3] == ["L0", "A", "alpha"]
    assert len(at.get("plotly_chart")) >= 2  # the curves with the fit, the residuals


def test_runs_page_shows_new_data_within_a_second(store: object, tmp_path: Path) -> None:
    from app.dashboard.store_access import VERSION_TTL_S

    at = open_page()
    assert len(at.dataframe[0].value) == 5
    build_store(tmp_path / "store", sizes=(3e7,), seed=2, running=("n30000000",))
    time.sleep(VERSION_TTL_S + 0.1)
    at.run()
    table = at.dataframe[0].value
    assert len(table) == 6 and "running" in set(table["status"])


def test_worker_processes_start_after_a_page_has_run(store: object) -> None:
    """A page run leaves the dashboard as `__main__`; a forkserver child re-imports it
    as `__mp_main__` (the Fit page's pooled bootstrap, the scheduler's fits): no page
    may run there, or every worker dies before its first task."""
    import numpy as np
    import pandas as pd

    import fitting

    open_page()
    n = np.geomspace(1e6, 1e9, 12)
    frame = pd.DataFrame({"run": [f"r{i}" for i in range(12)], "params": n})
    frame["loss"] = 1.7 + 400 * n**-0.3
    pooled = fitting.fit("power_law", frame, bootstrap=8, seed=1, n_jobs=2)
    serial = fitting.fit("power_law", frame, bootstrap=8, seed=1, n_jobs=1)
    np.testing.assert_allclose(pooled.bootstrap_samples, serial.bootstrap_samples, rtol=1e-12)
