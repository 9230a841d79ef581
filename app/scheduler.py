"""The job scheduler that `scalinglab serve` runs beside the dashboard.

One background thread polls the store's `jobs` table every few seconds. A cron job is
due when its `next_run_at` has passed (missed runs coalesce: the next time is computed
from *now*, so a job that slept through ten slots runs once); an "on-new-data" job is due
when the project's `data_version` differs from the job's `last_data_version`. Fits run in
a small thread pool, never on the polling thread, and one instance of a job at a time.
State lives in the store, so jobs survive a restart.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import (
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
)
from datetime import datetime
from typing import Any

import pandas as pd
from croniter import croniter

from fitting.jobs import now_utc, run_job
from store.errors import BadInputError, NotEnoughDataError

ON_NEW_DATA = "on-new-data"
log = logging.getLogger("scalinglab.scheduler")


def validate_schedule(schedule: str) -> str:
    """A cron expression or 'on-new-data'; raises BadInputError otherwise."""
    schedule = schedule.strip()
    if schedule == ON_NEW_DATA or croniter.is_valid(schedule):
        return schedule
    raise BadInputError(
        f"schedule {schedule!r} is neither a cron expression (e.g. '*/5 * * * *') "
        f"nor {ON_NEW_DATA!r}"
    )


def next_cron_run(schedule: str, after: datetime) -> datetime:
    """The first cron slot strictly after `after`."""
    return croniter(schedule, after).get_next(datetime)


def _as_datetime(value: Any) -> datetime | None:
    """A timestamp from the store (None, NaT, Timestamp or datetime) as a datetime or None."""
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return None if pd.isna(stamp) else stamp.to_pydatetime()


def is_due(job: dict[str, Any], now: datetime, data_version: str | None = None) -> bool:
    """Whether a job should run at `now` (paused jobs never are)."""
    if bool(job.get("paused")):
        return False
    if job["schedule"] == ON_NEW_DATA:
        return data_version is not None and str(data_version) != str(job.get("last_data_version"))
    nxt = _as_datetime(job.get("next_run_at"))
    return nxt is None or nxt <= now


class Scheduler:
    """Polls the jobs table and runs due jobs in a worker pool."""

    def __init__(
        self,
        store: Any,
        *,
        poll_seconds: float = 2.0,
        workers: int = 1,
        runner: Callable[[Any, int], int] = run_job,
        ingest_seconds: float | None = 10.0,
        processes: bool = True,
    ) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.ingest_seconds = ingest_seconds
        self._last_ingest = 0.0
        self._runner = runner
        self._workers = workers
        # Fits run in worker processes by default: the bootstrap is CPU-bound (no GIL
        # contention with the poll thread), and each worker has its own DuckDB instance,
        # so it never shares an in-process connection configuration with the poller.
        self._processes = processes
        self._pool = self._new_pool()
        self._running: dict[int, Future[int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Recover from a previous process, then poll in a daemon thread."""
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_seconds + 5)
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def recover(self) -> None:
        """A job left 'running' by a process that died is not running any more."""
        from store import jobs

        for job in jobs.list_jobs(self.store).to_dict("records"):
            if job.get("status") == "running":
                jobs.update_job(self.store, int(job["id"]), status="interrupted")
            if job["schedule"] != ON_NEW_DATA and _as_datetime(job.get("next_run_at")) is None:
                nxt = next_cron_run(job["schedule"], now_utc())
                jobs.update_job(self.store, int(job["id"]), next_run_at=nxt)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._maybe_ingest()
                self.tick()
            except Exception:  # the loop must outlive any one bad poll (e.g. store busy)
                log.exception("scheduler poll failed")
            self._stop.wait(self.poll_seconds)

    def _maybe_ingest(self) -> None:
        """Move live trainers' inbox shards into the tables now and then (reads see them
        anyway; this keeps the inbox short)."""
        if (
            self.ingest_seconds is None
            or time.monotonic() - self._last_ingest < self.ingest_seconds
        ):
            return
        self._last_ingest = time.monotonic()
        from store.ingest import ingest_inbox

        ingest_inbox(self.store)

    def tick(self, now: datetime | None = None) -> list[int]:
        """One poll: submit every due job that is not already running. Returns their ids."""
        from store import jobs, queries

        now = now or now_utc()
        submitted = []
        versions: dict[str, str] = {}
        for job in jobs.list_jobs(self.store).to_dict("records"):
            job_id = int(job["id"])
            if self.is_running(job_id):
                continue
            version = None
            if job["schedule"] == ON_NEW_DATA and not job.get("paused"):
                if job["project"] not in versions:
                    versions[job["project"]] = str(queries.data_version(self.store, job["project"]))
                version = versions[job["project"]]
            if not is_due(job, now, version):
                continue
            if job["schedule"] != ON_NEW_DATA:
                # Coalesce missed slots: schedule from now, not from the missed slot.
                jobs.update_job(self.store, job_id, next_run_at=next_cron_run(job["schedule"], now))
            self.submit(job_id)
            submitted.append(job_id)
        return submitted

    def _new_pool(self) -> Executor:
        if self._processes:
            ctx = multiprocessing.get_context("spawn")  # no fork of a threaded process
            return ProcessPoolExecutor(max_workers=self._workers, mp_context=ctx)
        return ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="fit-job")

    def submit(self, job_id: int) -> Future[int] | None:
        """Run a job in the pool unless an instance of it is already running."""
        with self._lock:
            if job_id in self._running and not self._running[job_id].done():
                return None
            try:
                future = self._pool.submit(self._runner, self.store, job_id)
            except BrokenExecutor:  # a worker died earlier: start a fresh pool
                self._pool = self._new_pool()
                future = self._pool.submit(self._runner, self.store, job_id)
            future.add_done_callback(lambda f: self._finished(job_id, f))
            self._running[job_id] = future
            return future

    def _finished(self, job_id: int, future: Future[int]) -> None:
        """Log failures; run_job recorded them on the job unless its worker died."""
        if future.cancelled() or future.exception() is None:
            return
        err = future.exception()
        if isinstance(err, NotEnoughDataError):
            log.info("job %s waits for data: %s", job_id, err)
            return
        log.warning("job %s failed: %s", job_id, err)
        if isinstance(err, BrokenExecutor):
            from store import jobs

            with contextlib.suppress(Exception):
                jobs.update_job(
                    self.store,
                    job_id,
                    status="error",
                    last_error="the fit's worker process died (out of memory?)",
                )

    def is_running(self, job_id: int) -> bool:
        with self._lock:
            fut = self._running.get(job_id)
            return fut is not None and not fut.done()

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Block until every submitted job finished (tests, shutdown)."""
        with self._lock:
            futures = list(self._running.values())
        for fut in futures:
            with contextlib.suppress(Exception):
                fut.result(timeout=timeout)
