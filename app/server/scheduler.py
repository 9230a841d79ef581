"""The job scheduler that `scalinglab serve` runs beside the dashboard.

A job fits one law, or (law "allocation") computes Chinchilla's three allocation approaches
and saves the report (`fitting.analyses.allocation_record`); `fitting.jobs.run_job` runs
either, so every rule below holds for both.

One background thread polls the store's `jobs` table every few seconds. A cron job is
due when its `next_run_at` has passed (missed runs coalesce: the next time is computed
from *now*, so a job that slept through ten slots runs once); an "on-new-data" job is due
when the project's `data_version` differs from the job's `last_data_version` and any
back-off (`next_run_at`) has passed. State lives in the store, so jobs survive a restart.

Faults stay with the job that has them:
- a job whose stored spec cannot be scheduled (a bad cron string written around
  `store.jobs.add_job`) is marked `error` with the reason, and the others still run;
- each fit runs in a process of its own with a timeout (`job_timeout_s`), so a hung or
  crashing fit is stopped and recorded without blocking the queue;
- a failing on-new-data job records the data version it failed on (it waits for new
  data) and backs off (30 s, doubling, at most 30 min) while new data keeps coming.
Fit processes ignore Ctrl-C (the scheduler stops them) and die with their parent.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from croniter import croniter

from fitting.jobs import now_utc, run_job
from store.errors import NotEnoughDataError, ScalinglabError
from store.jobs import ON_NEW_DATA, validate_schedule

__all__ = ["ON_NEW_DATA", "Scheduler", "is_due", "next_cron_run", "validate_schedule"]

log = logging.getLogger("scalinglab.scheduler")

DEFAULT_JOB_TIMEOUT_S = 30 * 60.0
BACKOFF_BASE_S = 30.0
BACKOFF_MAX_S = 30 * 60.0
_WAIT_SLICE_S = 0.25  # how often a job's waiting thread looks at the stop flag


class JobFailed(ScalinglabError):
    """A fit process ended without a result the job recorded itself."""


class JobDied(JobFailed):
    """The fit's process ended without a word (killed, crashed)."""


class JobTimedOut(JobFailed):
    """The fit ran past the job timeout and was stopped."""

    def __init__(self, message: str, timeout_s: float) -> None:
        super().__init__(message)
        self.timeout_s = timeout_s


class JobInterrupted(JobFailed):
    """The scheduler stopped (serve shutting down) while the fit ran."""


class JobNotStarted(JobInterrupted):
    """The scheduler stopped before the job's turn came (nothing to record)."""


def next_cron_run(schedule: str, after: datetime) -> datetime:
    """The first cron slot strictly after `after`."""
    return croniter(schedule, after).get_next(datetime)


def backoff_seconds(failures: int) -> float:
    """How long a failing on-new-data job waits before its next try."""
    return min(BACKOFF_BASE_S * 2 ** max(failures - 1, 0), BACKOFF_MAX_S)


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
    nxt = _as_datetime(job.get("next_run_at"))
    if job["schedule"] == ON_NEW_DATA:
        # next_run_at, when set, is a back-off after failures: not before then.
        changed = data_version is not None and str(data_version) != str(
            job.get("last_data_version")
        )
        return changed and (nxt is None or nxt <= now)
    return nxt is None or nxt <= now


def _job_main(
    runner: Callable[[Any, int], int],
    store: Any,
    job_id: int,
    conn: multiprocessing.connection.Connection,
    parent_pid: int,
) -> None:
    """A fit process: its own process group (a terminal's Ctrl-C is not for it, and a
    kill of the group takes the fit's own bootstrap workers too), ending with the
    scheduler's process or with its parent, the forkserver."""
    from app.server.childproc import die_with_parent, start_time

    forkserver = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.setpgid(0, 0)
        own_group = True
    except OSError:
        own_group = False  # still in the parent's group: never kill that group

    def end(*_: object) -> None:
        if own_group:
            os.killpg(0, signal.SIGKILL)
        os._exit(1)

    signal.signal(signal.SIGTERM, end)
    die_with_parent(signal.SIGTERM, forkserver)
    # The forkserver outlives the scheduler's process while this process runs (it holds
    # the forkserver's keep-alive pipe), so the death signal alone would never come:
    # watch the scheduler's process itself.
    watched = (parent_pid, start_time(parent_pid))
    threading.Thread(target=_end_with, args=(*watched, end), daemon=True).start()
    try:
        outcome: tuple[str, Any] = ("ok", int(runner(store, job_id)))
    except NotEnoughDataError as err:
        outcome = ("waiting", str(err))
    except ScalinglabError as err:
        outcome = ("error", str(err))
    except Exception as err:
        outcome = ("error", f"{type(err).__name__}: {err}")
    conn.send(outcome)
    conn.close()


def _end_with(pid: int, started: int | None, end: Callable[[], None], every_s: float = 0.5) -> None:
    """Call `end` once process `pid` (started at `started`) is gone."""
    from app.server.childproc import alive

    while alive(pid, started):
        time.sleep(every_s)
    end()


class Scheduler:
    """Polls the jobs table and runs due jobs, at most `workers` at a time."""

    def __init__(
        self,
        store: Any,
        *,
        poll_seconds: float = 2.0,
        workers: int = 1,
        runner: Callable[[Any, int], int] = run_job,
        ingest_seconds: float | None = 10.0,
        processes: bool = True,
        job_timeout_s: float = DEFAULT_JOB_TIMEOUT_S,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.ingest_seconds = ingest_seconds
        self.job_timeout_s = job_timeout_s
        self._clock = clock
        self._last_ingest = 0.0
        self._runner = runner
        # Each fit runs in a process of its own by default: CPU-bound bootstraps
        # never contend with the poll thread, each has its own DuckDB instance, and a hung
        # or crashed fit can be stopped alone. processes=False runs fits on the pool's
        # threads (tests with in-process runners; no timeout can be enforced there).
        self._processes = processes
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fit-job")
        self._running: dict[int, Future[int]] = {}
        self._procs: dict[int, Any] = {}
        self._failures: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # Life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Recover from a previous process, then poll in a daemon thread."""
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        """Stop polling, stop every running fit (its job becomes 'interrupted')."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_seconds + 5)
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            _kill_group(proc)
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def recover(self) -> None:
        """A job left 'running' by a process that died is not running any more; a cron
        job without a next slot gets one. A job that cannot be scheduled is marked."""
        from store import jobs

        for job in jobs.list_jobs(self.store).to_dict("records"):
            try:
                if job.get("status") == "running":
                    jobs.update_job(self.store, int(job["id"]), status="interrupted")
                schedule = validate_schedule(job["schedule"])
                if schedule != ON_NEW_DATA and _as_datetime(job.get("next_run_at")) is None:
                    nxt = next_cron_run(schedule, self._clock())
                    jobs.update_job(self.store, int(job["id"]), next_run_at=nxt)
            except Exception as err:
                self._mark_unschedulable(job, err)

    def _loop(self) -> None:
        while not self._stop.is_set():
            # Separately: a failed ingest (a bad shard, a busy store) must not stop the jobs.
            for step in (self._maybe_ingest, self.tick):
                try:
                    step()
                except ScalinglabError as err:
                    log.warning("scheduler: %s", err)
                except Exception:  # the loop must outlive any one bad poll
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

    # Polling ------------------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> list[int]:
        """One poll: submit every due job that is not already running. Returns their ids.
        A job that cannot be scheduled is marked 'error' and skipped; the rest go on."""
        from store import jobs

        now = now or self._clock()
        submitted = []
        versions: dict[str, str] = {}
        for job in jobs.list_jobs(self.store).to_dict("records"):
            try:
                if self._due(job, now, versions):
                    self.submit(int(job["id"]))
                    submitted.append(int(job["id"]))
            except Exception as err:
                self._mark_unschedulable(job, err)
        return submitted

    def _due(self, job: dict[str, Any], now: datetime, versions: dict[str, str]) -> bool:
        """Whether to run `job` now; moves a due cron job to its next slot."""
        from store import jobs, queries

        job_id = int(job["id"])
        if self.is_running(job_id) or bool(job.get("paused")):
            return False
        schedule = validate_schedule(job["schedule"])
        version = None
        if schedule == ON_NEW_DATA:
            if job["project"] not in versions:
                versions[job["project"]] = str(queries.data_version(self.store, job["project"]))
            version = versions[job["project"]]
        if not is_due({**job, "schedule": schedule}, now, version):
            return False
        if schedule != ON_NEW_DATA:
            # Coalesce missed slots: schedule from now, not from the missed slot.
            jobs.update_job(self.store, job_id, next_run_at=next_cron_run(schedule, now))
        return True

    def _mark_unschedulable(self, job: dict[str, Any], err: Exception) -> None:
        """Record why a job cannot be scheduled, once (not on every poll)."""
        from store import jobs

        message = f"cannot schedule this job: {err}"[:2000]
        if job.get("status") == "error" and job.get("last_error") == message:
            return
        log.warning("job %s: %s", job.get("id"), message)
        with contextlib.suppress(Exception):
            jobs.update_job(self.store, int(job["id"]), status="error", last_error=message)

    # Running ------------------------------------------------------------------------------

    def submit(self, job_id: int) -> Future[int] | None:
        """Run a job in the pool unless an instance of it is already running or queued."""
        with self._lock:
            if job_id in self._running and not self._running[job_id].done():
                return None
            future = self._pool.submit(self._execute, job_id)
            self._running[job_id] = future
        future.add_done_callback(lambda f: self._finished(job_id, f))
        return future

    def _execute(self, job_id: int) -> int:
        """Run the job and record its outcome before the future completes, so the next
        poll never sees a finished job without its back-off."""
        try:
            if not self._processes:
                fit_id = self._runner(self.store, job_id)
            else:
                fit_id = self._run_in_process(job_id)
        except BaseException as err:
            self._record_safely(job_id, err)
            raise
        self._record_safely(job_id, None)
        return fit_id

    def _run_in_process(self, job_id: int) -> int:
        """Run the job in a process of its own; stop it at the timeout or on `stop()`."""
        ctx = _fit_context()
        reader, writer = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_job_main,
            args=(self._runner, self.store, job_id, writer, os.getpid()),
            name=f"fit-job-{job_id}",
            daemon=True,
        )
        timeout_s = self.job_timeout_s  # a later change applies to later jobs
        with self._lock:
            if self._stop.is_set():
                raise JobNotStarted("the scheduler stopped before the job started")
            deadline = time.monotonic() + timeout_s
            proc.start()
            self._procs[job_id] = proc
        writer.close()
        outcome: tuple[str, Any] | None = None
        try:
            while outcome is None and proc.exitcode is None:
                if self._stop.is_set():
                    _kill_group(proc)
                    raise JobInterrupted("stopped by the scheduler's shutdown")
                left = deadline - time.monotonic()
                if left <= 0:
                    _kill_group(proc)
                    raise JobTimedOut(
                        f"the fit ran past the job timeout ({timeout_s:g} s) and was stopped",
                        timeout_s,
                    )
                ready = multiprocessing.connection.wait(
                    [reader, proc.sentinel], timeout=min(left, _WAIT_SLICE_S)
                )
                if reader in ready:
                    with contextlib.suppress(EOFError):
                        outcome = reader.recv()
                    break
        finally:
            proc.join(timeout=10)
            if proc.is_alive():
                _kill_group(proc)
                proc.join(timeout=5)
            with self._lock:
                self._procs.pop(job_id, None)
            reader.close()
        if outcome is None:
            if self._stop.is_set():  # stop() killed it while this thread waited
                raise JobInterrupted("stopped by the scheduler's shutdown")
            code = proc.exitcode
            why = " (killed: out of memory?)" if code == -signal.SIGKILL else ""
            raise JobDied(f"the fit's process died with exit code {code}{why}")
        kind, value = outcome
        if kind == "ok":
            return int(value)
        if kind == "waiting":
            raise NotEnoughDataError(str(value))
        raise JobFailed(str(value))

    def _finished(self, job_id: int, future: Future[int]) -> None:
        """Log a failure (the outcome is recorded already)."""
        if future.cancelled() or future.exception() is None:
            return
        err = future.exception()
        if isinstance(err, NotEnoughDataError):
            log.info("job %s waits for data: %s", job_id, err)
        elif isinstance(err, JobInterrupted):
            log.info("job %s: %s", job_id, err)
        else:
            log.warning("job %s failed: %s", job_id, err)

    def _record_safely(self, job_id: int, err: BaseException | None) -> None:
        try:
            self._record(job_id, err)
        except Exception:  # a busy store: the next poll sees the job as the fit left it
            log.exception("job %s: could not record the outcome", job_id)

    def _record(self, job_id: int, err: BaseException | None) -> None:
        """Record what the fit could not record itself; back off a failing on-new-data
        job (waiting for data is no failure: it waits for the data version to change)."""
        from store import jobs

        if isinstance(err, NotEnoughDataError | JobNotStarted):
            return
        job = jobs.get_job(self.store, job_id)
        if job is None:  # deleted meanwhile
            return
        on_new_data = job["schedule"] == ON_NEW_DATA
        if err is None:
            self._failures.pop(job_id, None)
            if on_new_data and job.get("next_run_at") is not None:
                jobs.update_job(self.store, job_id, next_run_at=None)
            return
        if isinstance(err, JobInterrupted):
            jobs.update_job(self.store, job_id, status="interrupted", last_error=str(err))
            return
        fields: dict[str, Any] = {}
        if isinstance(err, JobTimedOut | JobDied) or job.get("status") == "running":
            # The fit was stopped, or died, before it could record its own outcome.
            fields.update(status="error", last_error=str(err)[:2000])
            if isinstance(err, JobTimedOut):
                fields["last_duration_s"] = err.timeout_s
        if on_new_data:
            failures = self._failures.get(job_id, 0) + 1
            self._failures[job_id] = failures
            fields["next_run_at"] = self._clock() + timedelta(seconds=backoff_seconds(failures))
        if fields:
            jobs.update_job(self.store, job_id, **fields)

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


# What every fit imports, loaded once in the forkserver: a job's process then starts in
# milliseconds instead of importing pandas, DuckDB and SciPy again.
_PRELOAD = [
    "app.server.childproc",
    "app.server.scheduler",
    "fitting",
    "fitting.jobs",
    "fitting.persist",
    "fitting.analyses.allocation_record",
    "fitting.analyses.allocation_report",
]


def _fit_context() -> Any:
    """Forkserver processes: never a fork of this threaded process, and cheap to start."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)  # no effect once the server runs
    return ctx


def _kill_group(proc: Any) -> None:
    """Kill a fit process and its process group (its bootstrap workers)."""
    if proc.pid is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(Exception):
            proc.kill()
