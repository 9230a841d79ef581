"""Saved fits and fitting jobs round-trip through the store."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from store import Store, fits, jobs
from store.errors import BadInputError


def test_fit_round_trip(store: Store) -> None:
    fit_id = fits.save_fit(
        store,
        project="p",
        law="chinchilla",
        result_json='{"params": {"E": 1.69}}',
        selection={"runs": ["a", "b"]},
        data_hash="abc",
        options={"loss": "huber"},
        code_version="0.1.0",
    )
    other = fits.save_fit(
        store,
        project="q",
        law="kaplan",
        result_json="{}",
        selection=None,
        data_hash=None,
        options=None,
        code_version=None,
        job_id=7,
    )
    loaded = fits.load_fit(store, fit_id)
    assert json.loads(loaded["result_json"]) == {"params": {"E": 1.69}}
    assert json.loads(loaded["selection"]) == {"runs": ["a", "b"]}
    assert loaded["law"] == "chinchilla" and loaded["job_id"] is None
    assert list(fits.list_fits(store)["id"]) == [other, fit_id]  # newest first
    assert list(fits.list_fits(store, project="p")["id"]) == [fit_id]
    assert list(fits.list_fits(store, job_id=7)["id"]) == [other]
    assert fits.list_fits(store, law="none").empty
    fits.delete_fit(store, fit_id)
    with pytest.raises(BadInputError, match="no fit with id"):
        fits.load_fit(store, fit_id)
    with pytest.raises(BadInputError):
        fits.delete_fit(store, fit_id)


def test_job_round_trip(store: Store) -> None:
    job_id = jobs.add_job(
        store,
        name="nightly",
        project="p",
        law="chinchilla",
        selection={"runs": None},
        options={},
        schedule="0 3 * * *",
    )
    job = jobs.get_job(store, job_id)
    assert job is not None and job["paused"] is False and job["status"] == "idle"
    when = dt.datetime(2026, 1, 2, 3, 4, 5)
    jobs.update_job(store, job_id, status="ok", last_run_at=when, last_fit_id=3, paused=True)
    job = jobs.get_job(store, job_id)
    assert job is not None
    assert (job["status"], job["last_run_at"], job["last_fit_id"], job["paused"]) == (
        "ok",
        when,
        3,
        True,
    )
    assert list(jobs.list_jobs(store)["name"]) == ["nightly"]
    assert jobs.list_jobs(store, project="other").empty
    with pytest.raises(BadInputError, match="cannot update"):
        jobs.update_job(store, job_id, colour="red")
    jobs.delete_job(store, job_id)
    assert jobs.get_job(store, job_id) is None
    with pytest.raises(BadInputError, match="no job"):
        jobs.update_job(store, job_id, status="ok")


GOOD_JOB = {
    "name": "n",
    "project": "p",
    "law": "power_law",
    "selection": {"reduce": "final"},
    "options": {"x": "params"},
    "schedule": "*/5 * * * *",
}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("schedule", "0 0 * * * *", "'0 0 * * * *' has 6 fields, a cron expression has 5"),
        ("schedule", "0 0 0 * * * 2026", "has 7 fields"),
        ("schedule", "every so often", "has 3 fields"),
        ("schedule", "61 * * * *", "'61 * * * *' is not a valid cron expression"),
        ("schedule", "0 0 31 2 *", "'0 0 31 2 *' never fires"),
        ("schedule", "", "a job needs a schedule"),
        ("selection", {"colour": "red"}, "unknown selection key(s) colour; known: runs,"),
        ("selection", {"reduce": "mean"}, "selection 'reduce' must be 'final', 'best' or 'all'"),
        ("selection", {"runs": "a,b"}, "selection 'runs' must be a list of names"),
        ("selection", {"finished": "yes"}, "selection 'finished' must be true or false"),
        ("selection", "{not json", "job selection is not valid JSON"),
        ("options", ["x"], "job options must be a JSON object keyed by name"),
        ("options", {"delta": float("nan")}, "job options must be plain JSON values"),
        ("name", "  ", "a job needs a name"),
        ("project", None, "a job needs a project"),
    ],
)
def test_add_job_refuses_a_job_it_could_not_run(
    store: Store, field: str, value: object, message: str
) -> None:
    with pytest.raises(BadInputError) as err:
        jobs.add_job(store, **{**GOOD_JOB, field: value})
    assert message in str(err.value)
    assert jobs.list_jobs(store).empty  # nothing written


def test_schedules_are_normalised_and_update_is_validated_too(store: Store) -> None:
    job_id = jobs.add_job(store, **{**GOOD_JOB, "schedule": "  0   3 * * mon "})
    assert jobs.get_job(store, job_id)["schedule"] == "0 3 * * mon"
    assert jobs.validate_schedule(" on-new-data ") == "on-new-data"
    with pytest.raises(BadInputError, match="has 6 fields"):
        jobs.update_job(store, job_id, schedule="* * * * * *")
    with pytest.raises(BadInputError, match="unknown selection key"):
        jobs.update_job(store, job_id, selection={"nope": 1})
    job = jobs.get_job(store, job_id)
    assert job["schedule"] == "0 3 * * mon"
    assert json.loads(job["selection"]) == {"reduce": "final"}
