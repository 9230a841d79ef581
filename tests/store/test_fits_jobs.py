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
