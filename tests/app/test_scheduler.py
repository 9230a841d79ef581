"""The job scheduler against a real store: due jobs run once, missed runs coalesce, jobs
survive a restart, a failing fit records its error and the loop keeps going."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("fitting.persist", reason="fitting.persist has not landed yet")

from app.server.scheduler import ON_NEW_DATA, Scheduler, is_due, next_cron_run, validate_schedule
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


def _insert_raw(store: object, name: str, schedule: str) -> int:
    """A job written around store.jobs.add_job (an older version, a hand-edited store)."""
    with store.transaction() as con:
        row = con.execute(
            "INSERT INTO jobs (name, project, law, selection, options, schedule) "
            "VALUES (?, 'demo', 'power_law', '{}', '{\"x\": \"params\"}', ?) RETURNING id",
            [name, schedule],
        ).fetchone()
    return int(row[0])


def test_a_job_that_cannot_be_scheduled_is_marked_and_the_others_run(store: object) -> None:
    from store import jobs

    first = _add(store, name="first", schedule=ON_NEW_DATA)
    bad = _insert_raw(store, "bad-cron", "every so often")
    seconds = _insert_raw(store, "six-fields", "*/10 * * * * *")
    last = _add(store, name="last", schedule=ON_NEW_DATA)
    sched = Scheduler(store, ingest_seconds=None, processes=False, clock=lambda: NOW)
    try:
        sched.recover()  # no exception: the bad jobs are marked
        assert sched.tick(NOW) == [first, last]
        sched.wait_idle()
        assert sched.tick(NOW) == []
    finally:
        sched.stop()
    for job_id, why in ((bad, "has 3 fields"), (seconds, "has 6 fields")):
        job = jobs.get_job(store, job_id)
        assert job["status"] == "error"
        assert job["last_error"].startswith("cannot schedule this job: schedule ")
        assert why in job["last_error"]
    assert jobs.get_job(store, first)["status"] == "ok"
    assert jobs.get_job(store, last)["status"] == "ok"
    assert _fits(store, first) == 1 and _fits(store, last) == 1


def test_a_failing_on_new_data_job_waits_for_new_data_and_backs_off(
    store: object, tmp_path: Path
) -> None:
    """It once re-ran on every 2 s poll (34 runs in 70 s): now it records the data
    version it failed on and, while new data keeps coming, backs off 30 s, 60 s, ..."""
    from store import jobs, queries

    clock = {"now": NOW}
    job_id = _add(store, name="bad", schedule=ON_NEW_DATA, options={"x": "no_such_column"})
    sched = Scheduler(store, ingest_seconds=None, processes=False, clock=lambda: clock["now"])
    try:
        assert sched.tick() == [job_id]
        sched.wait_idle()
        job = jobs.get_job(store, job_id)
        assert job["status"] == "error" and "no_such_column" in job["last_error"]
        assert job["last_data_version"] == queries.data_version(store, "demo")
        assert job["next_run_at"] == NOW + timedelta(seconds=30)
        clock["now"] = NOW + timedelta(hours=1)
        assert sched.tick() == []  # no new data: no new try, however long it waits
        build_store(tmp_path / "store", sizes=(3e7,), seed=1)  # new data lands
        clock["now"] = NOW + timedelta(seconds=10)
        assert sched.tick() == []  # within the back-off
        clock["now"] = NOW + timedelta(seconds=31)
        assert sched.tick() == [job_id]
        sched.wait_idle()
        assert jobs.get_job(store, job_id)["next_run_at"] == clock["now"] + timedelta(seconds=60)
    finally:
        sched.stop()


def hang_or_fit(store: object, job_id: int) -> int:
    """A fit runner for the process tests: the job named 'hang' never returns, 'die' is
    killed, the others fit."""
    import os
    import signal

    from fitting.jobs import run_job
    from store import jobs

    name = jobs.get_job(store, job_id)["name"]
    if name == "hang":
        jobs.update_job(store, job_id, status="running")
        time.sleep(3600)
    if name == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    return run_job(store, job_id)


def _wait_for_process(
    sched: Scheduler, job_id: int, timeout: float = 120
) -> tuple[int, int | None]:
    """The job's fit process: (pid, start time), which name it even if pids wrap."""
    from app.server.childproc import start_time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = sched._procs.get(job_id)
        if proc is not None and proc.pid is not None:
            return int(proc.pid), start_time(int(proc.pid))
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never got a process")


def test_a_hung_fit_is_stopped_at_the_timeout_and_the_next_job_runs(store: object) -> None:
    from app.server.childproc import wait_gone
    from store import jobs

    hang = _add(store, name="hang", schedule=ON_NEW_DATA)
    good = _add(store, name="good", schedule=ON_NEW_DATA)
    sched = Scheduler(store, ingest_seconds=None, runner=hang_or_fit, job_timeout_s=3)
    try:
        assert sched.tick(NOW) == [hang, good]  # one worker: good waits behind hang
        pid, started = _wait_for_process(sched, hang)
        sched.job_timeout_s = 600  # for the jobs started from now on: good's real fit
        sched.wait_idle(timeout=180)
        assert wait_gone(pid, 10, started)
    finally:
        sched.stop()
    job = jobs.get_job(store, hang)
    assert job["status"] == "error"
    assert job["last_error"] == "the fit ran past the job timeout (3 s) and was stopped"
    assert job["last_duration_s"] == 3
    assert _fits(store, hang) == 0
    assert jobs.get_job(store, good)["status"] == "ok" and _fits(store, good) == 1


def test_a_fit_process_that_dies_is_recorded(store: object) -> None:
    from store import jobs

    die = _add(store, name="die", schedule=ON_NEW_DATA)
    sched = Scheduler(store, ingest_seconds=None, runner=hang_or_fit, clock=lambda: NOW)
    try:
        assert sched.tick(NOW) == [die]
        sched.wait_idle(timeout=180)
    finally:
        sched.stop()
    job = jobs.get_job(store, die)
    assert job["status"] == "error"
    assert job["last_error"] == "the fit's process died with exit code -9 (killed: out of memory?)"
    assert job["next_run_at"] == NOW + timedelta(seconds=30)  # backs off like any failure


def test_stop_interrupts_a_running_fit_and_leaves_no_process(store: object) -> None:
    from app.server.childproc import wait_gone
    from store import jobs

    hang = _add(store, name="hang", schedule=ON_NEW_DATA)
    sched = Scheduler(store, ingest_seconds=None, runner=hang_or_fit)
    try:
        assert sched.tick(NOW) == [hang]
        pid, started = _wait_for_process(sched, hang)
        deadline = time.monotonic() + 120
        while jobs.get_job(store, hang)["status"] != "running" and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        sched.stop(wait=True)
    assert wait_gone(pid, 10, started)
    job = jobs.get_job(store, hang)
    assert job["status"] == "interrupted"
    assert job["last_error"] == "stopped by the scheduler's shutdown"
