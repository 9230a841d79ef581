"""Short-lived DuckDB connections with a bounded retry on lock conflicts.

DuckDB lets one process write a database file at a time (readers in other processes
are refused too while a writer holds it), so every connection here is opened for one
unit of work and retried with a short backoff when another process holds the lock.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from store.errors import StoreBusyError, StoreUnusableError

DEFAULT_LOCK_TIMEOUT_S = 10.0

# How many times this process waited for another process's lock (for tests and `info`).
lock_waits = 0

_LOCK_MARKERS = ("could not set lock", "conflicting lock", "resource temporarily unavailable")
_CONFIG_MARKER = "different configuration"
# DuckDB adds this when the process holding the lock is a reader (a shared lock).
_READER_MARKER = "would be able to open this database in read-only mode"
_HOLDER = re.compile(r"held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")
_DAMAGE_MARKERS = (
    "not a valid duckdb database",
    "corrupt database file",
    "could not read enough bytes",
    "does not match stored checksum",
)
_DENIED_MARKERS = ("permission denied", "read-only file system")


def is_lock_error(err: BaseException) -> bool:
    """True when DuckDB refused the file because another process holds its lock."""
    text = str(err).lower()
    return any(marker in text for marker in _LOCK_MARKERS)


def unusable(err: BaseException, path: Path) -> StoreUnusableError | None:
    """A clear error for a damaged database file or one this user may not open."""
    text = str(err).lower()
    if any(marker in text for marker in _DAMAGE_MARKERS):
        return StoreUnusableError(
            f"the store database {path} is damaged or is not a DuckDB file "
            f"({_first_line(err)}); restore it from a backup, or move it away to start "
            "an empty store there (files under inbox/ and uploads/ can then be ingested "
            "or imported again)"
        )
    if any(marker in text for marker in _DENIED_MARKERS):
        return StoreUnusableError(
            f"cannot open the store database {path}: {_first_line(err)}; choose a folder "
            "you can write to with --store or $SCALINGLAB_STORE"
        )
    return None


def busy_message(err: BaseException, path: Path, read_only: bool, timeout_s: float) -> str:
    """Who held the lock, from DuckDB's words: a reader only ever blocks a writer."""
    text = str(err)
    holder = _HOLDER.search(text)
    who = "another process"
    if holder:
        program = Path(holder["program"]).name
        who = f"another process (PID {holder['pid']}, {program})"
    elif _CONFIG_MARKER in text.lower():
        who = "another connection of this process"
    head = f"the store {path} stayed locked for {timeout_s:g} s: {who} "
    if not read_only and _READER_MARKER in text:
        return head + (
            "has it open for reading, and nothing may write while another process reads; "
            "try again when that read (a dashboard page, `runs`, an export or a fit) has "
            "finished"
        )
    return head + (
        "is writing to it; try again when the other writer (an import, ingest or fit) has finished"
    )


def _raise_unusable(err: BaseException, path: Path) -> None:
    mapped = unusable(err, path)
    if mapped is not None:
        raise mapped from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


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
                _raise_unusable(err, path)
                raise
            if time.monotonic() + delay > deadline:
                raise StoreBusyError(busy_message(err, path, read_only, timeout_s)) from err
        except duckdb.Error as err:
            _raise_unusable(err, path)
            raise
        lock_waits += 1
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.2)


@contextmanager
def connection(
    path: Path, *, read_only: bool, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection that is closed when the block ends, releasing the file lock.

    A damaged page met by a query in the block becomes a `StoreUnusableError` too.
    """
    con = open_with_retry(path, read_only=read_only, timeout_s=timeout_s)
    try:
        yield con
    except duckdb.Error as err:
        mapped = unusable(err, path) if not _names_a_shard(err) else None
        if mapped is None:
            raise
        raise mapped from err
    finally:
        con.close()


def _names_a_shard(err: BaseException) -> bool:
    """A damaged inbox shard is the quarantine's business, not the database's."""
    return ".parquet" in str(err)
