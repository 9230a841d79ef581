"""The job scheduler against a real store: due jobs run once, missed runs coalesce, jobs
survive a restart, a failing fit records its error and the loop keeps going."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("fitting.persist", reason="fitting.persist has not landed yet")

from app.scheduler import ON_NEW_DATA, Scheduler, is_due, next_cron_run, validate_schedule
from store.errors import BadInputError
from tests.app.builders import build_store

NOW = datetime(2026, 11, 24, 12, 0, 30)


def _add(store: object, name: str = "pl", schedule: str = "* * * * *", **kw: object) -> int:
    from store import jobs

    spec = {
        "project": "demo",
        "law": "power_law",
        "selection": {"reduce": "final"},
        "options": {"x": "params"},
        "schedule": schedule,
        **kw,
    }
    return jobs.add_job(store, name=name, **spec)


def _fits(store: object, job_id: int) -> int:
    from store import fits

    return len(fits.list_fits(store, job_id=job_id))


@pytest.fixture
def store(tmp_path: Path) -> object:
    return build_store(tmp_path / "store")


def test_schedule_validation_and_cron_arithmetic() -> None:
    assert validate_schedule(" */5 * * * * ") == "*/5 * * * *"
    assert validate_schedule(ON_NEW_DATA) == ON_NEW_DATA
    with pytest.raises(BadInputError, match="cron"):
        validate_schedule("every so often")
    assert next_cron_run("* * * * *", NOW) == datetime(2026, 11, 24, 12, 1)
    assert next_cron_run("0 * * * *", NOW) == datetime(2026, 11, 24, 13, 0)


def test_is_due_rules() -> None:
    job = {"schedule": "* * * * *", "paused": False, "next_run_at": NOW - timedelta(seconds=1)}
    assert is_due(job, NOW)
    assert not is_due({**job, "next_run_at": NOW + timedelta(seconds=1)}, NOW)
    assert not is_due({**job, "paused": True}, NOW)
    new_data = {"schedule": ON_NEW_DATA, "paused": False, "last_data_version": "v1"}
    assert is_due(new_data, NOW, "v2")
    assert not is_due(new_data, NOW, "v1")


def test_due_job_runs_once_and_missed_runs_coalesce(store: object) -> None:
    from store import jobs

    job_id = _add(store)
    # The job slept through an hour of minute slots: it must run once, not sixty times.
    jobs.update_job(store, job_id, next_run_at=NOW - timedelta(hours=1))
    sched = Scheduler(store, ingest_seconds=None)
    try:
        assert sched.tick(NOW) == [job_id]
        sched.wait_idle()
        assert sched.tick(NOW) == []
        sched.wait_idle()
    finally:
        sched.stop()
    job = jobs.get_job(store, job_id)
    assert _fits(store, job_id) == 1
    assert job["status"] == "ok" and job["last_error"] is None
    assert job["last_fit_id"] is not None and job["last_duration_s"] > 0
    assert job["next_run_at"] == datetime(2026, 11, 24, 12, 1)


def test_jobs_survive_a_restart(store: object, tmp_path: Path) -> None:
    from store import Store, jobs

    job_id = _add(store)
    first = Scheduler(store, ingest_seconds=None)
    first.recover()  # a fresh job gets its next slot
    assert jobs.get_job(store, job_id)["next_run_at"] is not None
    jobs.update_job(store, job_id, status="running")  # as if the process died mid-fit
    first.stop()

    reopened = Store(tmp_path / "store")
    second = Scheduler(reopened, ingest_seconds=None)
    second.recover()
    job = jobs.get_job(reopened, job_id)
    assert job["status"] == "interrupted"
    later = job["next_run_at"] + timedelta(seconds=1)
    try:
        assert second.tick(later) == [job_id]
        second.wait_idle()
    finally:
        second.stop()
    assert _fits(reopened, job_id) == 1


def test_failing_fit_records_error_and_loop_keeps_going(store: object) -> None:
    """The scheduler's clock is fixed: a minute boundary passing during the test cannot
    make the cron jobs due a second time (it once did, with the wall clock)."""
    from store import jobs

    bad = _add(store, name="bad", options={"x": "no_such_column"})
    missing = _add(store, name="empty", project="nowhere")
    good = _add(store, name="good")
    for job_id in (bad, missing, good):
        jobs.update_job(store, job_id, next_run_at=datetime(2000, 1, 1))
    sched = Scheduler(store, poll_seconds=0.1, ingest_seconds=None, clock=lambda: NOW)
    sched.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = {j: jobs.get_job(store, j)["status"] for j in (bad, missing, good)}
            if states[good] == "ok" and states[bad] == "error" and states[missing] == "waiting":
                break
            time.sleep(0.2)
        assert sched._thread is not None and sched._thread.is_alive()
    finally:
        sched.stop()
    assert "no_such_column" in jobs.get_job(store, bad)["last_error"]
    assert "no data" in jobs.get_job(store, missing)["last_error"]
    assert jobs.get_job(store, missing)["status"] == "waiting"  # too little data is no failure
    assert jobs.get_job(store, good)["status"] == "ok"
    assert _fits(store, good) == 1 and _fits(store, bad) == 0
    for job_id in (bad, missing, good):  # each ran once: its next slot is after NOW
        assert jobs.get_job(store, job_id)["next_run_at"] == datetime(2026, 11, 24, 12, 1)


def test_on_new_data_job_runs_when_the_data_changes(store: object, tmp_path: Path) -> None:
    job_id = _add(store, schedule=ON_NEW_DATA)
    sched = Scheduler(store, ingest_seconds=None)
    try:
        assert sched.tick(NOW) == [job_id]
        sched.wait_idle()
        assert sched.tick(NOW) == []  # nothing new
        build_store(tmp_path / "store", sizes=(3e7,), seed=1)  # a bigger run lands
        assert sched.tick(NOW) == [job_id]
        sched.wait_idle()
    finally:
        sched.stop()
    assert _fits(store, job_id) == 2


def test_one_instance_of_a_job_at_a_time(store: object) -> None:
    gate, calls = threading.Event(), []

    def slow(_store: object, job_id: int) -> int:
        calls.append(job_id)
        gate.wait(10)
        return 0

    job_id = _add(store)
    sched = Scheduler(store, runner=slow, workers=2, ingest_seconds=None, processes=False)
    try:
        assert sched.submit(job_id) is not None
        assert sched.submit(job_id) is None
        assert sched.is_running(job_id)
        assert sched.tick(NOW + timedelta(days=1)) == []  # due, but already running
    finally:
        gate.set()
        sched.wait_idle()
        sched.stop()
    assert calls == [job_id]
