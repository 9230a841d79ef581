"""A store that cannot be opened as asked gives a clear message, exit 2, never a
traceback, and is left as it was (issue 10, item 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from store import Store, queries, schema
from store.errors import StoreUnusableError
from store.inbox import InboxWriter
from store.ingest import ingest_inbox
from tests.store.conftest import table_contents

REPO = Path(__file__).resolve().parents[2]
DAMAGED = "is damaged or is not a DuckDB file"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def _assert_refused(proc: subprocess.CompletedProcess[str], message: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def filled(tmp_path: Path) -> Store:
    store = Store(tmp_path / "filled")
    for run in ("a", "b"):
        with InboxWriter(store, "p", run, facts={"params": 100}) as w:
            w.log_many({"step": np.arange(3000), "loss": 1.0 + 1.0 / (1 + np.arange(3000))})
    ingest_inbox(store)
    return store


def _copy_db(filled: Store, tmp_path: Path, name: str, data: bytes) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "scalinglab.duckdb").write_bytes(data)
    return folder


@pytest.mark.parametrize("cut", ["header", "garbage", "empty"])
def test_truncated_or_garbage_database(filled: Store, tmp_path: Path, cut: str) -> None:
    data = filled.db_path.read_bytes()
    bad = {"header": data[:5000], "garbage": os.urandom(300_000), "empty": b""}[cut]
    folder = _copy_db(filled, tmp_path, cut, bad)
    for verb in ("runs", "info", "ingest", "export"):
        extra = ["--out", str(tmp_path / "out.csv")] if verb == "export" else []
        _assert_refused(_cli(verb, "--store", str(folder), *extra), DAMAGED)
    proc = _cli("import", str(REPO / "README.md"), "--store", str(folder))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (folder / "scalinglab.duckdb").read_bytes() == bad  # left as it was
    assert not (tmp_path / "out.csv").exists()


def test_a_damaged_block_is_reported_not_raised(filled: Store, tmp_path: Path) -> None:
    """Overwrite each storage block in turn: every read either works or says the file
    is damaged (DuckDB's checksum catches it), and at least one block is caught."""
    data = filled.db_path.read_bytes()
    block, header = 262_144, 3 * 4096
    outcomes = []
    for i, start in enumerate(range(header, len(data), block)):
        damaged = bytearray(data)
        damaged[start + 1024 : start + 5120] = b"\xff" * 4096
        folder = _copy_db(filled, tmp_path, f"block{i}", bytes(damaged))
        try:
            queries.points_frame(Store(folder))
            queries.list_runs(Store(folder))
            outcomes.append("read")
        except StoreUnusableError as err:
            assert DAMAGED in str(err) and "Corrupt database file" in str(err)
            outcomes.append(folder)
        assert (folder / "scalinglab.duckdb").read_bytes() == bytes(damaged)
    caught = [o for o in outcomes if isinstance(o, Path)]
    assert caught, outcomes
    _assert_refused(_cli("runs", "--store", str(caught[0])), DAMAGED)


def test_store_path_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    for verb in ("runs", "info", "ingest"):
        _assert_refused(
            _cli(verb, "--store", str(target)), f"the store path {target} is a file; --store and"
        )
    under = target / "store"
    _assert_refused(
        _cli("runs", "--store", str(under)),
        f"the store path {under} is not a folder ({target} is a file)",
    )
    assert target.read_text() == "mine\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_store_folder_not_writable(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        _assert_refused(
            _cli("runs", "--store", str(locked / "store")), "cannot create the store folder"
        )
    finally:
        locked.chmod(0o755)


def test_store_folder_cannot_be_created(tmp_path: Path) -> None:
    """A folder nobody may create (here under /proc, which refuses even root)."""
    if not Path("/proc/self").exists():
        pytest.skip("needs Linux's /proc")
    target = Path("/proc/scalinglab-store")
    _assert_refused(
        _cli("runs", "--store", str(target)), f"cannot create the store folder {target}"
    )


def test_newer_schema_is_read_but_never_written(filled: Store, tmp_path: Path) -> None:
    newer = schema.CURRENT_VERSION + 1
    with filled.transaction() as con:
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [newer])
    before = table_contents(filled)
    root = str(filled.root)
    with InboxWriter(filled, "p", "live") as w:  # the inbox never opens the database
        w.log(0, loss=2.0)
    message = (
        f"the store {filled.root} has schema version {newer}, newer than this scalinglab's "
        f"({schema.CURRENT_VERSION}): it can be read but not written"
    )
    csv = tmp_path / "c.csv"
    csv.write_text("run,step,loss\nx,0,1.0\n")
    _assert_refused(_cli("import", str(csv), "--store", root), message)
    _assert_refused(_cli("ingest", "--store", root), message)
    runs = _cli("runs", "--store", root, "--json")
    assert runs.returncode == 0, runs.stderr
    assert sorted(r["run"] for r in json.loads(runs.stdout)) == ["a", "b", "live"]
    info = _cli("info", "--store", root, "--json")
    assert info.returncode == 0 and json.loads(info.stdout)["schema_version"] == newer
    assert table_contents(filled) == before
    assert len(list(filled.inbox_dir.glob("pts-*.parquet"))) == 1  # still waiting
