"""One bad inbox shard never takes the store down (issue 10, item 1).

Each kind of bad shard is dropped into a store holding two projects (stored points, a
live run still in the inbox): every read, the ingest and the CLI go on serving the rest
unchanged, and the bad shard lands in `quarantine/` with its reason.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from store import Store, queries, shards
from store.inbox import InboxWriter
from store.ingest import ingest_inbox
from tests.store.conftest import table_contents

REPO = Path(__file__).resolve().parents[2]
BAD_POINTS = "pts-00000000000000000001-1-00000000-badshard.parquet"
BAD_FACTS = "run-00000000000000000001-1-00000000-badshard.parquet"


def _points_table(**columns: object) -> pa.Table:
    """A one-row point shard in the canonical schema, with some columns replaced."""
    base: dict[str, pa.Array] = {
        "project": pa.array(["alpha"]),
        "run": pa.array(["foreign"]),
        "split": pa.array(["train"]),
        "step": pa.array([7], pa.int64()),
        "tokens": pa.array([1.0]),
        "flops": pa.array([1.0]),
        "lr": pa.array([1e-3]),
        "loss": pa.array([2.0]),
        "family": pa.array([None], pa.string()),
        "sampling_ratio": pa.array([None], pa.float64()),
    }
    for name, value in columns.items():
        if value is None:
            del base[name]
        else:
            base[name] = value  # type: ignore[assignment]
    return pa.table(base)


def _facts_table(text: str) -> pa.Table:
    return pa.table({"project": ["alpha"], "run": ["live"], "facts": [text]})


def _garbage(store: Store) -> Path:
    path = store.inbox_dir / BAD_POINTS
    path.write_bytes(os.urandom(64) + b"not parquet at all")
    return path


def _truncated(store: Store) -> Path:
    real = shards.list_shards(store.inbox_dir, shards.POINTS_PREFIX)[0]
    data = real.read_bytes()
    path = store.inbox_dir / BAD_POINTS
    path.write_bytes(data[: len(data) // 2])
    return path


def _torn_page(store: Store) -> Path:
    """Our writer's shard, footer intact, its first page header overwritten."""
    real = shards.list_shards(store.inbox_dir, shards.POINTS_PREFIX)[0]
    data = bytearray(real.read_bytes())
    data[4:40] = b"\xff" * 36
    path = store.inbox_dir / BAD_POINTS
    path.write_bytes(bytes(data))
    return path


def _parquet(name: str, table: pa.Table) -> Callable[[Store], Path]:
    def make(store: Store) -> Path:
        path = store.inbox_dir / name
        pq.write_table(table, path)
        return path

    return make


CASES: dict[str, tuple[Callable[[Store], Path], str]] = {
    "garbage bytes": (_garbage, "not a readable Parquet file"),
    "truncated shard": (_truncated, "not a readable Parquet file"),
    "wrong types": (
        _parquet(BAD_POINTS, _points_table(step=pa.array(["seven"]), loss=pa.array(["low"]))),
        "column 'step' is string, expected int64",
    ),
    "missing columns": (
        _parquet(BAD_POINTS, _points_table(split=None, family=None, lr=None)),
        "missing columns ['split', 'lr', 'family']",
    ),
    "narrow types": (
        _parquet(BAD_POINTS, _points_table(loss=pa.array([2.0], pa.float32()))),
        "column 'loss' is float, expected double",
    ),
    "negative step": (
        _parquet(BAD_POINTS, _points_table(step=pa.array([-3], pa.int64()))),
        "column 'step' has a negative step (-3)",
    ),
    "negative loss": (
        _parquet(BAD_POINTS, _points_table(loss=pa.array([-2.5]))),
        "column 'loss' has a negative loss (-2.5)",
    ),
    "null run": (
        _parquet(BAD_POINTS, _points_table(run=pa.array([None], pa.string()))),
        "column 'run' has missing or empty names",
    ),
    "facts bad json": (
        _parquet(BAD_FACTS, _facts_table('{"params": 12')),
        "row 1: the facts are not valid JSON",
    ),
    "facts params text": (
        _parquet(BAD_FACTS, _facts_table('{"params": "70B"}')),
        "row 1: run fact 'params' must be a number, got '70B'",
    ),
    "facts params 2**70": (
        _parquet(BAD_FACTS, _facts_table(json.dumps({"params": 2**70}))),
        "row 1: run fact 'params' does not fit in 64 bits",
    ),
    "facts entropy text": (
        _parquet(BAD_FACTS, _facts_table('{"entropy": "high"}')),
        "row 1: run fact 'entropy' must be a number, got 'high'",
    ),
    "facts unknown status": (
        _parquet(BAD_FACTS, _facts_table('{"status": "done"}')),
        "row 1: run status must be one of",
    ),
}


@pytest.fixture
def two_projects(store: Store) -> Store:
    """Project alpha: a stored run and a live one (inbox only); project beta: stored."""
    for project, run in (("alpha", "stored"), ("beta", "other")):
        with InboxWriter(store, project, run, facts={"params": 1000, "entropy": 1.5}) as w:
            w.log_many({"step": np.arange(50), "loss": 4.0 / (1 + np.arange(50))})
    ingest_inbox(store)
    live = InboxWriter(store, "alpha", "live", facts={"params": 2000})
    live.log_many({"step": np.arange(20), "loss": 3.0 / (1 + np.arange(20))})
    live.flush()
    return store


def _reads(store: Store) -> dict[str, pd.DataFrame]:
    return {
        "runs": queries.list_runs(store).drop(columns=["created_at", "updated_at"]),
        "points": queries.points_frame(store),
        "curve": queries.curve(store, "alpha", ["stored", "live"]),
        "linear": queries.curve(store, "alpha", ["live"], spacing="linear"),
    }


def _assert_same(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> None:
    for name, frame in before.items():
        pd.testing.assert_frame_equal(frame, after[name], obj=name)


def _assert_quarantined(store: Store, bad: Path, reason: str) -> None:
    assert not bad.exists()
    moved = store.root / "quarantine" / bad.name
    assert moved.is_file()
    note = json.loads((store.root / "quarantine" / f"{bad.name}.reason.json").read_text())
    assert note["shard"] == bad.name and reason in note["reason"]


@pytest.mark.parametrize("case", list(CASES))
def test_reads_quarantine_a_bad_shard_and_serve_the_rest(
    two_projects: Store, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = two_projects
    make, reason = CASES[case]
    before = _reads(store)
    versions = {p: queries.data_version(store, p) for p in ("alpha", "beta")}
    stored = table_contents(store)
    bad = make(store)
    with caplog.at_level(logging.WARNING, logger="scalinglab.store"):
        after = _reads(store)
    _assert_same(before, after)
    _assert_quarantined(store, bad, reason)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and bad.name in warned[0] and reason in warned[0]
    assert {p: queries.data_version(store, p) for p in ("alpha", "beta")} == versions
    assert table_contents(store) == stored  # a read moved the file, wrote nothing


@pytest.mark.parametrize("case", list(CASES))
def test_ingest_quarantines_a_bad_shard_and_ingests_the_rest(
    two_projects: Store, case: str
) -> None:
    store = two_projects
    make, reason = CASES[case]
    before = _reads(store)
    bad = make(store)  # no read sees it first: the ingest meets it
    report = ingest_inbox(store)
    assert report.quarantined == [bad.name]
    assert report.points == 20 and ("alpha", "live") in report.runs
    _assert_quarantined(store, bad, reason)
    assert shards.list_shards(store.inbox_dir, "") == []
    _assert_same(before, _reads(store))
    with store.connect(read_only=True) as con:
        names = {r[0] for r in con.execute("SELECT name FROM ingested_shards").fetchall()}
    assert bad.name not in names


def test_a_torn_page_behind_a_good_footer_is_found_when_read(two_projects: Store) -> None:
    """The footer check passes; the read fails, reads the shards whole, and retries."""
    store = two_projects
    before = _reads(store)
    bad = _torn_page(store)
    _assert_same(before, _reads(store))
    _assert_quarantined(store, bad, "not a readable Parquet file")


def test_ingest_finds_a_torn_page_behind_a_good_footer(two_projects: Store) -> None:
    store = two_projects
    before = _reads(store)
    bad = _torn_page(store)
    report = ingest_inbox(store)
    assert report.quarantined == [bad.name] and report.points == 20
    _assert_same(before, _reads(store))
    _assert_quarantined(store, bad, "not a readable Parquet file")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_cli_serves_the_rest_and_info_lists_the_quarantine(two_projects: Store) -> None:
    store = two_projects
    bad = CASES["facts params text"][0](store)
    runs = _cli("runs", "--store", str(store.root), "--json")
    assert runs.returncode == 0, runs.stderr
    assert sorted(r["run"] for r in json.loads(runs.stdout)) == ["live", "other", "stored"]
    assert f"quarantined inbox shard {bad.name}: row 1: run fact 'params'" in runs.stderr
    assert "Traceback" not in runs.stderr
    info = _cli("info", "--store", str(store.root))
    assert info.returncode == 0, info.stderr
    lines = info.stdout.splitlines()
    assert "     quarantined: 1" in lines
    assert (
        f"                  {bad.name}: row 1: run fact 'params' must be a number, got '70B'"
        in (lines)
    )
    data = json.loads(_cli("info", "--store", str(store.root), "--json").stdout)
    assert [q["shard"] for q in data["quarantined"]] == [bad.name]
    ingest = _cli("ingest", "--store", str(store.root))
    assert ingest.returncode == 0 and "ingested 20 points from 1 shards" in ingest.stdout


def test_a_checked_shard_is_not_read_again(two_projects: Store) -> None:
    """Shards are checked once per process: a second read of the same inbox reads no
    footer (the verdict is kept by name, size and modification time)."""
    import pyarrow.parquet as pq_module

    store = two_projects
    queries.list_runs(store)
    calls = []
    original = pq_module.read_metadata

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return original(*args, **kwargs)

    pq_module.read_metadata = counting  # type: ignore[assignment]
    try:
        queries.list_runs(store)
        queries.points_frame(store)
    finally:
        pq_module.read_metadata = original  # type: ignore[assignment]
    assert calls == []


def test_shards_reach_the_disk_before_their_rename(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shard's bytes are synced under its temporary name, then the folder after the
    rename, so a power loss leaves a whole shard or none."""
    events: list[str] = []
    real_sync, real_fsync, real_replace = shards._sync_data, os.fsync, os.replace

    def sync_data(fd: int) -> None:
        events.append("sync " + Path(os.readlink(f"/proc/self/fd/{fd}")).name[:5])
        real_sync(fd)

    def fsync(fd: int) -> None:
        events.append("fsync " + os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def replace(src: object, dst: object) -> None:
        events.append("rename")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(shards, "_sync_data", sync_data)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    shards.write_atomic(store.inbox_dir, shards.POINTS_PREFIX, _points_table())
    assert events == ["sync .tmp-", "rename", f"fsync {store.inbox_dir}"]
