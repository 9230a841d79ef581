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
con = duckdb.connect(sys.argv[1], read_only=sys.argv[3] == "read")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold(store: Store, seconds: float, mode: str = "write") -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store.db_path), str(seconds), mode],
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
        with pytest.raises(StoreBusyError) as caught, store.transaction():
            pass
        message = str(caught.value)
        assert message.startswith(
            f"the store {store.db_path} stayed locked for 0.5 s: another process "
            f"(PID {proc.pid}, python"
        )
        assert message.endswith(
            ") is writing to it; try again when the other writer (an import, ingest or fit) "
            "has finished"
        )
        with pytest.raises(StoreBusyError, match=f"PID {proc.pid}.* is writing to it"):
            store.schema_version()  # reads wait and fail the same way
    finally:
        proc.kill()
        proc.wait()


def test_a_reader_holding_the_lock_is_named_as_a_reader(tmp_path: Path) -> None:
    """A writer refused because another process reads is not told of 'the other writer'."""
    store = Store(tmp_path / "s", lock_timeout_s=0.5)
    with store.transaction() as con:
        con.execute("INSERT INTO projects (project) VALUES ('p')")
    proc = _hold(store, 5, mode="read")
    try:
        with pytest.raises(StoreBusyError) as caught, store.transaction() as con:
            con.execute("INSERT INTO projects (project) VALUES ('q')")
        message = str(caught.value)
        assert f"another process (PID {proc.pid}, " in message
        assert "has it open for reading" in message and "other writer" not in message
        with store.connect(read_only=True) as con:  # readers share the lock
            assert con.execute("SELECT project FROM projects").fetchall() == [("p",)]
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
