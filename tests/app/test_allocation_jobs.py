"""Allocation-report jobs: created from the CLI and the Jobs page, run by the scheduler (its
own forkserver processes) on a real store holding the digitised Chinchilla points, saved
as a fit row named 'allocation', listed by `scalinglab fits` and read by the Predict page.
The saved report must be the one `scalinglab allocate` computes on the same data."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from app.cli import cli
from fitting.analyses.allocation_record import ALLOCATION, load_report
from store import Store
from store.errors import BadInputError
from tests.published import CHINCHILLA

ENTRY = str(Path(__file__).resolve().parents[2] / "app" / "dashboard" / "streamlit_app.py")
NOW = datetime(2026, 11, 24, 12, 0, 30)
# Small resamples keep the test quick; the same on both sides of the comparison.
OPTIONS = ["--option", "bootstrap=30", "--option", "fit_bootstrap=5"]
BUDGETS = ["--budget", "1e21", "--budget", "5.76e23"]


@pytest.fixture(scope="module")
def chin(tmp_path_factory: pytest.TempPathFactory) -> Store:
    from store.importers import import_files

    store = Store(tmp_path_factory.mktemp("alloc") / "store")
    import_files(store, [CHINCHILLA], project="chin")
    return store


def _cli(*args: str) -> object:
    return CliRunner().invoke(cli, list(args))


def _add(store: Store, *extra: str) -> object:
    base = ["jobs", "add", "--name", "alloc", "--project", "chin", "--kind", "allocation"]
    return _cli(*base, *extra, "--store", str(store.root))


def test_cli_refuses_what_an_allocation_cannot_take(chin: Store) -> None:
    import fitting
    from store import jobs

    assert ALLOCATION not in fitting.LAWS  # the record's name can never be a law's

    before = len(jobs.list_jobs(chin))
    for extra, message in (
        (["--law", "power_law"], "must be one of"),  # Approach 3 needs a compute optimum
        (["--option", "x=params"], "takes no option 'x'"),
        (["--split", "eval"], "takes no selection split"),
        (["--budget", "-1"], "positive FLOP counts"),
        (["--flops", "7ND"], "FLOP accounting must be one of"),
    ):
        out = _add(chin, *extra)
        assert out.exit_code == 2, (extra, out.output)
        assert message in out.output, (extra, out.output)
    bare = ["jobs", "add", "--name", "f", "--project", "chin", "--store", str(chin.root)]
    out = _cli(*bare)
    assert out.exit_code == 2 and "needs --law" in out.output
    assert len(jobs.list_jobs(chin)) == before  # nothing saved


def test_scheduler_runs_the_job_and_saves_the_report(chin: Store) -> None:
    from app.server.scheduler import Scheduler
    from store import fits, jobs

    out = _add(chin, *BUDGETS, *OPTIONS, "--schedule", "*/5 * * * *")
    assert out.exit_code == 0, out.output
    job_id = int(out.output.split()[1])
    job = jobs.get_job(chin, job_id)
    assert job["law"] == ALLOCATION and json.loads(job["selection"])["reduce"] == "all"
    jobs.update_job(chin, job_id, next_run_at=datetime(2000, 1, 1))
    sched = Scheduler(chin, ingest_seconds=None, clock=lambda: NOW)
    try:
        assert sched.tick(NOW) == [job_id]
        sched.wait_idle(timeout=300)
    finally:
        sched.stop()
    job = jobs.get_job(chin, job_id)
    assert job["status"] == "ok", job["last_error"]
    assert job["next_run_at"] == datetime(2026, 11, 24, 12, 5)
    (row,) = fits.list_fits(chin, job_id=job_id).to_dict("records")
    assert row["law"] == ALLOCATION and row["id"] == job["last_fit_id"]
    saved = load_report(chin, row["id"])
    from fitting.errors import FitError
    from fitting.persist import load_result

    with pytest.raises(FitError, match="is an allocation report, not a law's fit"):
        load_result(chin, row["id"])  # `scalinglab predict`, the Compare page

    # The same report as `scalinglab allocate` on the same data and options.
    args = ["allocate", "--project", "chin", *BUDGETS, "--bootstrap", "30"]
    out = _cli(*args, "--fit-bootstrap", "5", "--json", "--store", str(chin.root))
    assert out.exit_code == 0, out.output
    direct = json.loads(out.stdout)
    assert saved["budgets"] == direct["budgets"] == [1e21, 5.76e23]
    for mine, theirs in zip(saved["approaches"], direct["approaches"], strict=True):
        assert mine["approach"] == theirs["approach"] and "error" not in mine
        assert mine["a"] == pytest.approx(theirs["a"], rel=1e-9)
        assert mine["b"] == pytest.approx(theirs["b"], rel=1e-9)
        assert mine["at_budgets"][1]["N_opt"] == pytest.approx(theirs["at_budgets"][1]["N_opt"])
    # Chinchilla's points give a near 0.5 by Approaches 1 and 2 (Hoffmann et al.: 0.50, 0.49).
    assert [round(a["a"], 1) for a in saved["approaches"][:2]] == [0.5, 0.5]

    listed = _cli("fits", "--project", "chin", "--json", "--store", str(chin.root))
    assert listed.exit_code == 0, listed.output
    (entry,) = [r for r in json.loads(listed.stdout) if r["id"] == row["id"]]
    assert entry["law"] == ALLOCATION and entry["job_id"] == job_id
    assert entry["method"] == "allocation report (envelope, isoflop, parametric)"
    assert entry["flags"] == [
        f"{a['approach']}: {len(a['flags'])} flag{'s' if len(a['flags']) > 1 else ''}"
        for a in saved["approaches"]
        if a["flags"]
    ]


def _page(store: Store, page: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("SCALINGLAB_STORE", str(store.root))
    monkeypatch.delenv("SCALINGLAB_SCHEDULER", raising=False)
    at = AppTest.from_file(ENTRY, default_timeout=120).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_predict_and_jobs_pages_read_the_saved_report(
    chin: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fitting.jobs import add_job, run_job

    job_id = add_job(
        chin,
        name="alloc-page",
        project="chin",
        law=ALLOCATION,
        selection={},
        options={"budgets": [1e21], "bootstrap": 20, "fit_bootstrap": 3},
        schedule="on-new-data",
    )
    fit_id = run_job(chin, job_id)
    at = _page(chin, "views/predict.py", monkeypatch)
    at.selectbox(key="pred-fit").set_value(fit_id).run()
    assert not at.exception, at.exception
    (table,) = [d.value for d in at.dataframe if "approach" in d.value.columns]
    assert table["approach"].str[0].tolist() == ["1", "2", "3"]  # shown, not recomputed
    assert table["C"].tolist() == [1e21] * 3
    saved = load_report(chin, fit_id)
    assert table["a"].tolist() == [a["a"] for a in saved["approaches"]]
    assert f"Saved by job {job_id}" in " ".join(c.value for c in at.caption)

    at = _page(chin, "views/jobs.py", monkeypatch)
    at.selectbox(key="job-selected").set_value(job_id).run()
    assert not at.exception, at.exception
    history = at.selectbox(key=f"job-ahist-{job_id}")
    assert "envelope a" in history.options and "parametric b" in history.options
    assert len(at.get("plotly_chart")) == 1


def test_jobs_page_creates_an_allocation_job(chin: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from store import jobs

    at = _page(chin, "views/jobs.py", monkeypatch)
    keys = {w.key for w in (*at.text_input, *at.selectbox)}
    assert "job-law" in keys and "job-budgets" not in keys  # a fit's inputs only
    at.radio(key="job-kind").set_value("allocation report (three approaches)").run()
    keys = {w.key for w in (*at.text_input, *at.selectbox)}
    assert {"job-budgets", "job-alaw"} <= keys and not {"job-law", "job-x"} & keys
    at.text_input(key="job-name").input("chinchilla allocation")
    at.text_input(key="job-budgets").input("1e20, 1e22")
    at.selectbox(key="job-alaw").set_value("chinchilla")
    next(b for b in at.button if b.label == "Create job").click().run()
    assert not at.exception, at.exception
    listed = jobs.list_jobs(chin)
    row = listed[listed["name"] == "chinchilla allocation"].to_dict("records")[0]
    assert row["law"] == ALLOCATION and json.loads(row["selection"]) == {"reduce": "all"}
    assert json.loads(row["options"]) == {
        "budgets": [1e20, 1e22],
        "law": "chinchilla",
        "bootstrap": 100,
        "fit_bootstrap": 100,
    }


def test_too_little_data_waits(tmp_path: Path) -> None:
    """One run is no allocation: the job waits for data instead of failing."""
    from fitting.jobs import add_job, run_job
    from store import jobs
    from store.errors import NotEnoughDataError
    from tests.app.builders import build_store

    store = build_store(tmp_path / "store", sizes=(1e6,))
    job_id = add_job(
        store,
        name="a",
        project="demo",
        law=ALLOCATION,
        selection={},
        options={"bootstrap": 20},
        schedule="on-new-data",
    )
    with pytest.raises(NotEnoughDataError, match="no allocation approach can run"):
        run_job(store, job_id)
    assert jobs.get_job(store, job_id)["status"] == "waiting"


def test_allocate_save_keeps_the_report(chin: Store) -> None:
    args = ["allocate", "--project", "chin", "--budget", "1e21", "--bootstrap", "20"]
    out = _cli(*args, "--fit-bootstrap", "3", "--save", "--json", "--store", str(chin.root))
    assert out.exit_code == 0, out.output
    printed = json.loads(out.stdout)
    saved = load_report(chin, printed["fit_id"])
    assert [a["a"] for a in saved["approaches"]] == [a["a"] for a in printed["approaches"]]
    no_project = _cli("allocate", "--csv", str(CHINCHILLA), "--save", "--store", str(chin.root))
    # A BadInputError: the console script's `main` turns it into exit code 2.
    assert isinstance(no_project.exception, BadInputError), no_project.output
    assert "give --project" in str(no_project.exception)
