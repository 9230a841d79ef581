"""Lock conflicts are retried for a bounded time, then reported clearly."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from store import Store, schema
from store.errors import StoreBusyError

REPO = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
import duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold(store: Store, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store.db_path), str(seconds)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


def test_busy_store_gives_a_clear_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "s", lock_timeout_s=0.5)
    store.ensure()
    proc = _hold(store, 5)
    try:
        with (
            pytest.raises(StoreBusyError, match="stayed locked by another process"),
            store.transaction(),
        ):
            pass
        with pytest.raises(StoreBusyError):
            store.schema_version()  # reads wait and fail the same way
    finally:
        proc.kill()
        proc.wait()


def test_short_lock_is_waited_out(tmp_path: Path) -> None:
    store = Store(tmp_path / "s", lock_timeout_s=20)
    store.ensure()
    proc = _hold(store, 1.0)
    start = time.monotonic()
    with store.transaction() as con:
        con.execute("INSERT INTO projects (project) VALUES ('p')")
    assert time.monotonic() - start > 0.3
    proc.wait()
    assert store.schema_version() == schema.CURRENT_VERSION


def test_writer_waits_for_a_reader_thread(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    store.ensure()
    opened = threading.Event()

    def read() -> None:
        with store.connect(read_only=True) as con:
            opened.set()
            time.sleep(0.3)
            con.execute("SELECT 1").fetchall()

    thread = threading.Thread(target=read)
    thread.start()
    opened.wait()
    with store.transaction() as con:  # same file, other mode, same process
        con.execute("INSERT INTO projects (project) VALUES ('p')")
    thread.join()
    with store.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM projects").fetchone() == (1,)
