"""fitting.jobs: selecting a job's data and running one job against a real store."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fitting.persist", reason="fitting.persist has not landed yet")

from fitting.jobs import run_job, select_data
from store.errors import ScalinglabError
from tests.app.builders import ENTROPY, SIZES, build_store


@pytest.fixture
def store(tmp_path: Path) -> object:
    return build_store(tmp_path / "store", running=("n10000000",))


def test_select_final_eval_losses_of_finished_runs(store: object) -> None:
    frame = select_data(store, "demo", None)
    assert sorted(frame["run"]) == sorted(f"n{int(n)}" for n in SIZES[:-1])
    assert set(frame["split"]) == {"eval"}
    assert (frame["step"] == 40).all()
    with_running = select_data(store, "demo", {"finished": False})
    assert len(with_running) == len(SIZES)


def test_select_all_points_and_train_split(store: object) -> None:
    frame = select_data(store, "demo", {"reduce": "all", "splits": ["train"], "runs": ["n100000"]})
    assert len(frame) == 40 and set(frame["run"]) == {"n100000"}


def test_run_job_saves_the_fit_with_the_job_id_and_records_status(store: object) -> None:
    from store import fits, jobs, queries

    job_id = jobs.add_job(
        store,
        name="pl",
        project="demo",
        law="power_law",
        selection={"finished": False},
        options={"x": "params"},
        schedule="on-new-data",
    )
    fit_id = run_job(store, job_id)
    job = jobs.get_job(store, job_id)
    assert job["status"] == "ok" and job["last_fit_id"] == fit_id
    assert job["last_duration_s"] > 0 and job["last_run_at"] is not None
    assert job["last_data_version"] == queries.data_version(store, "demo")
    saved = fits.list_fits(store, job_id=job_id)
    assert list(saved["id"]) == [fit_id]
    from fitting.persist import load_result

    result = load_result(store, fit_id)
    assert result.params["L_inf"] == pytest.approx(ENTROPY, abs=0.1)


def test_run_job_records_the_error(store: object) -> None:
    from store import jobs

    job_id = jobs.add_job(
        store,
        name="bad",
        project="demo",
        law="no_such_law",
        selection={},
        options={},
        schedule="* * * * *",
    )
    with pytest.raises(ScalinglabError, match="unknown law"):
        run_job(store, job_id)
    job = jobs.get_job(store, job_id)
    assert job["status"] == "error" and "unknown law" in job["last_error"]
    with pytest.raises(ScalinglabError, match="no job"):
        run_job(store, 999)


def test_final_losses_wait_for_finished_runs(tmp_path: Path) -> None:
    live = build_store(tmp_path / "live", sizes=(1e5, 1e6), running=("n100000", "n1000000"))
    with pytest.raises(ScalinglabError, match=r"no finished runs yet .*\(2 running"):
        select_data(live, "demo", None)
    assert len(select_data(live, "demo", {"finished": False})) == 2


def test_job_waits_while_there_is_too_little_data(tmp_path: Path) -> None:
    """A sweep still running (or too few sizes so far) is no failure: status 'waiting'."""
    from store import jobs, queries

    live = build_store(tmp_path / "live", sizes=(1e5, 1e6), running=("n100000",))
    job_id = jobs.add_job(
        live, name="early", project="demo", law="power_law", selection={}, options={},
        schedule="on-new-data",
    )  # fmt: skip
    with pytest.raises(ScalinglabError, match="too few points"):
        run_job(live, job_id)
    job = jobs.get_job(live, job_id)
    assert job["status"] == "waiting" and "too few points" in job["last_error"]
    assert job["last_data_version"] == queries.data_version(live, "demo")


def test_add_job_refuses_options_the_law_does_not_take(store: object) -> None:
    from fitting.jobs import add_job
    from store import jobs

    spec = {"name": "j", "project": "demo", "selection": {}, "schedule": "on-new-data"}
    cases = [
        ("power_law", {"colour": "red"}, "law 'power_law' takes no option 'colour'; known:"),
        ("power_law", {"bootstrp": 100}, "takes no option 'bootstrp'"),
        ("chinchilla", {"x": "params"}, "law 'chinchilla' takes no option 'x'"),
        ("power_law", {"resample": "sometimes"}, "resample must be 'runs', 'points' or 'auto'"),
        ("power_law", {"bootstrap": "lots"}, "bad fit option value"),
        ("no_such_law", {}, "unknown law 'no_such_law'"),
    ]
    for law, options, message in cases:
        with pytest.raises(ScalinglabError) as err:
            add_job(store, law=law, options=options, **spec)
        assert message in str(err.value), (law, options)
    assert jobs.list_jobs(store).empty
    ok = add_job(store, law="power_law", options={"x": "params", "bootstrap": 5}, **spec)
    nmt = add_job(store, law="nmt", options={"Ne_ref": 1e6}, **spec)
    curve = add_job(store, law="lr_annealing", options={"lambda": 0.99}, **spec)
    assert sorted(jobs.list_jobs(store)["id"]) == sorted([ok, nmt, curve])


def test_a_failed_job_records_the_data_version_it_failed_on(store: object) -> None:
    """So an on-new-data job does not try again until the data changes."""
    from store import jobs, queries

    job_id = jobs.add_job(
        store, name="bad-x", project="demo", law="power_law", selection={},
        options={"x": "no_such_column"}, schedule="on-new-data",
    )  # fmt: skip
    with pytest.raises(ScalinglabError, match="x must be one of"):
        run_job(store, job_id)
    job = jobs.get_job(store, job_id)
    assert job["status"] == "error" and "no_such_column" in job["last_error"]
    assert job["last_data_version"] == queries.data_version(store, "demo")


def test_run_job_checks_a_stored_spec_written_around_add_job(store: object) -> None:
    from store import fits, jobs

    with store.transaction() as con:
        con.execute(
            "INSERT INTO jobs (name, project, law, selection, options, schedule) "
            "VALUES ('raw', 'demo', 'power_law', '{}', '{\"colour\": \"red\"}', 'on-new-data')"
        )
    job_id = int(jobs.list_jobs(store)["id"].iloc[0])
    with pytest.raises(ScalinglabError, match="takes no option 'colour'"):
        run_job(store, job_id)
    job = jobs.get_job(store, job_id)
    assert job["status"] == "error" and "takes no option 'colour'" in job["last_error"]
    assert fits.list_fits(store, job_id=job_id).empty
