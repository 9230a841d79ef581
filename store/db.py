"""Short-lived DuckDB connections with a bounded retry on lock conflicts.

DuckDB lets one process write a database file at a time (readers in other processes
are refused too while a writer holds it), so every connection here is opened for one
unit of work and retried with a short backoff when another process holds the lock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from store.errors import StoreBusyError

DEFAULT_LOCK_TIMEOUT_S = 10.0

# How many times this process waited for another process's lock (for tests and `info`).
lock_waits = 0

_LOCK_MARKERS = ("could not set lock", "conflicting lock", "resource temporarily unavailable")
_CONFIG_MARKER = "different configuration"


def is_lock_error(err: BaseException) -> bool:
    """True when DuckDB refused the file because another process holds its lock."""
    text = str(err).lower()
    return any(marker in text for marker in _LOCK_MARKERS)


def _open(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.ConnectionException as err:
        # This process already holds the file in read-write mode: share that instance.
        if not (read_only and _CONFIG_MARKER in str(err).lower()):
            raise
        con = duckdb.connect(str(path), read_only=False)
    # Long statements would otherwise draw a progress bar on the user's terminal.
    con.execute("SET enable_progress_bar = false")
    return con


def open_with_retry(
    path: Path, *, read_only: bool, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> duckdb.DuckDBPyConnection:
    """Open `path`, retrying lock conflicts with jittered backoff until `timeout_s`."""
    global lock_waits
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            return _open(path, read_only)
        except (duckdb.IOException, duckdb.ConnectionException) as err:
            # A read-only instance of this file open in another thread of this process
            # blocks a read-write open the same way another process's lock does.
            busy_here = not read_only and _CONFIG_MARKER in str(err).lower()
            if not (is_lock_error(err) or busy_here):
                raise
            if time.monotonic() + delay > deadline:
                raise StoreBusyError(
                    f"the store {path} stayed locked by another process for {timeout_s:.0f} s; "
                    "try again when the other writer (an import, ingest or fit) has finished"
                ) from err
        lock_waits += 1
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.2)


@contextmanager
def connection(
    path: Path, *, read_only: bool, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection that is closed when the block ends, releasing the file lock."""
    con = open_with_retry(path, read_only=read_only, timeout_s=timeout_s)
    try:
        yield con
    finally:
        con.close()
