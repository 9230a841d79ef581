"""Which trained runs are alive: one lock file per run, held while its trainer runs.

The trainer (rank 0) holds an exclusive `flock` on `<store>/checkpoints/<project>/<run>/
run.lock` from before it loads the checkpoint until after it wrote the run's final
status. The kernel drops the lock when the process dies, however it dies (SIGKILL, OOM,
power), so "status `running` and the lock is free" proves the trainer is gone:
`mark_stale` then records the run `interrupted`. A second trainer on the same run is
refused while the first holds the lock (they would share one checkpoint).

Runs without a lock file (imports, other writers' `InboxWriter`s) are never judged.
No torch here: the CLI and the dashboard may call `mark_stale` without it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from store.errors import ScalinglabError

LOCK = "run.lock"
_POLL_S = 0.05


class RunBusyError(ScalinglabError):
    """Another live process is training this run."""


def run_dir(store_root: str | Path, project: str, run: str) -> Path:
    """The run's folder under the store: its checkpoint and its lock."""
    return Path(store_root) / "checkpoints" / project / run


class RunLock:
    """An exclusive, process-lifetime lock on one run (see the module docstring)."""

    def __init__(self, store_root: str | Path, project: str, run: str) -> None:
        self.project, self.run = project, run
        self.path = run_dir(store_root, project, run) / LOCK
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False when another open file holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        self._fd = fd
        return True

    def acquire(self, wait_s: float = 2.0) -> None:
        """Take the lock for a trainer, waiting briefly (a `mark_stale` holds it for
        milliseconds); `RunBusyError` when a live trainer has it."""
        deadline = time.monotonic() + wait_s
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                holder = self.holder()
                who = f" (pid {holder})" if holder else ""
                raise RunBusyError(
                    f"run {self.project}/{self.run} is being trained by another process{who}; "
                    "wait for it to end or stop it first"
                )
            time.sleep(_POLL_S)
        # The pid is only for that message: the lock, not the file's text, is the truth.
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def holder(self) -> int | None:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _running(store_root: str | Path, project: str) -> set[str]:
    from store.core import Store
    from store.queries import list_runs

    runs = list_runs(Store(store_root), project)
    if runs.empty:
        return set()
    return set(runs.loc[runs["status"] == "running", "run"])


def mark_stale(
    store_root: str | Path, project: str, runs: Iterable[str] | None = None
) -> list[str]:
    """Record `interrupted` for every run (of `runs`, default all) that the store says is
    `running` but whose trainer is gone. Returns their names."""
    candidates = _running(store_root, project)
    if runs is not None:
        candidates &= set(runs)
    with contextlib.ExitStack() as held:
        free = []
        for name in sorted(candidates):
            lock = RunLock(store_root, project, name)
            if lock.path.exists() and lock.try_acquire():
                held.callback(lock.release)
                free.append(name)
        # Re-read with the locks held: a trainer that ended meanwhile wrote its final
        # status before letting go, and none can start until we release.
        stale = sorted(set(free) & _running(store_root, project)) if free else []
        for name in stale:
            _record_interrupted(store_root, project, name)
    return stale


def _record_interrupted(store_root: str | Path, project: str, run: str) -> None:
    from store.inbox import InboxWriter

    # A writer announces `running` when it opens; the later shard wins, and we never close
    # it (closing would record `finished`).
    InboxWriter(store_root, project, run).set_facts(status="interrupted")


@contextlib.contextmanager
def held(store_root: str | Path | None, project: str, run: str) -> Iterator[RunLock | None]:
    """The run's lock for the duration of a `with` (nothing when there is no store)."""
    if store_root is None:
        yield None
        return
    with RunLock(store_root, project, run) as lock:
        yield lock
