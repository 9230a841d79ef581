"""Inbox shards: visible before ingest, ingested exactly once, crash-safe."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from store import Store, queries
from store.errors import BadInputError
from store.inbox import InboxWriter
from store.ingest import ingest_inbox


def _count(store: Store) -> int:
    with store.connect(read_only=True) as con:
        row = con.execute("SELECT count(*) FROM points").fetchone()
    return int(row[0]) if row else 0


def _write_run(store: Store, run: str, n: int, shard: int = 100) -> None:
    with InboxWriter(store, "p", run, facts={"params": 1000, "entropy": 1.5}) as w:
        for start in range(0, n, shard):
            steps = np.arange(start, min(start + shard, n))
            w.log_many({"step": steps, "loss": 5.0 / (1 + steps), "lr": 1e-3})
            w.flush()


def test_shards_visible_before_ingest(store: Store) -> None:
    w = InboxWriter(store, "p", "live", facts={"params": 123, "schedule": {"kind": "cosine"}})
    for step in range(10):
        w.log(step, loss=3.0 - 0.1 * step, lr=1e-3, tokens=100.0 * step)
    w.log(5, split="eval", loss=2.9)
    w.flush()
    runs = queries.list_runs(store, "p")
    assert list(runs["run"]) == ["live"]
    row = runs.iloc[0]
    assert row["status"] == "running" and row["params"] == 123
    assert row["n_points"] == 11 and row["last_step"] == 9
    assert math.isclose(row["last_loss"], 2.1) and row["last_tokens"] == 900.0
    frame = queries.points_frame(store, "p")
    assert len(frame) == 11 and set(frame["split"]) == {"train", "eval"}
    assert frame["params"].eq(123).all()
    assert _count(store) == 0  # nothing in the tables yet
    w.close()
    assert queries.list_runs(store, "p").iloc[0]["status"] == "finished"


def test_ingest_exactly_once(store: Store) -> None:
    _write_run(store, "a", 1000)
    before = queries.points_frame(store, "p")
    report = ingest_inbox(store)
    assert report.points == 1000 and report.point_shards == 10
    assert list(store.inbox_dir.iterdir()) == []
    assert ingest_inbox(store).points == 0
    after = queries.points_frame(store, "p")
    assert _count(store) == 1000
    assert before.drop(columns="status").equals(after.drop(columns="status"))
    run = queries.list_runs(store, "p").iloc[0]
    assert run["status"] == "finished" and run["entropy"] == 1.5 and run["n_points"] == 1000


def test_crash_between_commit_and_delete(store: Store, tmp_path: Path) -> None:
    _write_run(store, "a", 300)
    saved = tmp_path / "saved"
    shutil.copytree(store.inbox_dir, saved)
    ingest_inbox(store)
    # The files come back as if the process died before deleting them.
    for path in saved.iterdir():
        shutil.copy(path, store.inbox_dir / path.name)
    assert queries.list_runs(store, "p").iloc[0]["n_points"] == 300  # not counted twice
    assert len(queries.points_frame(store, "p")) == 300
    report = ingest_inbox(store)
    assert report.points == 0 and report.skipped_shards == len(list(saved.iterdir()))
    assert _count(store) == 300 and list(store.inbox_dir.iterdir()) == []


def test_relogged_steps_keep_latest_value(store: Store) -> None:
    with InboxWriter(store, "p", "r") as w:
        w.log_many({"step": [0, 1, 2], "loss": [3.0, 2.0, 1.0]})
        w.flush()
        w.log_many({"step": [2, 3], "loss": [0.5, 0.4]})
    ingest_inbox(store)
    with InboxWriter(store, "p", "r") as w:
        w.log(3, loss=0.3)
    ingest_inbox(store)
    frame = queries.points_frame(store, "p")
    assert list(frame["step"]) == [0, 1, 2, 3]
    assert list(frame["loss"]) == [3.0, 2.0, 0.5, 0.3]
    assert queries.list_runs(store, "p").iloc[0]["n_points"] == 4


def test_failed_run_and_nonfinite_loss(store: Store) -> None:
    with pytest.raises(ZeroDivisionError), InboxWriter(store, "p", "boom") as w:
        w.log(0, loss=float("nan"), lr=1e-3)
        w.log(1, loss=float("inf"), lr=1e-3)
        w.log(2, loss=2.0, lr=1e-3)
        _ = 1 / 0
    ingest_inbox(store)
    run = queries.list_runs(store, "p").iloc[0]
    assert run["status"] == "failed"
    frame = queries.points_frame(store, "p")
    assert frame["loss"].isna().tolist() == [True, True, False]


def test_bad_writer_input(store: Store) -> None:
    w = InboxWriter(store, "p", "r")
    with pytest.raises(BadInputError, match="non-negative integer"):
        w.log(-1, loss=1.0)
    with pytest.raises(BadInputError, match="unknown run facts"):
        w.set_facts(colour="red")
    with pytest.raises(BadInputError, match="status"):
        w.close(status="weird")
    with pytest.raises(BadInputError, match="unknown columns"):
        w.log_many({"step": [1], "losss": [1.0]})


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        ({"params": "70B"}, "run fact 'params' must be a number, got '70B'"),
        ({"params": 2**70}, "run fact 'params' does not fit in 64 bits: 1180591620717411303424"),
        ({"params": -5}, "run fact 'params' counts parameters: got -5"),
        ({"params": 1.5e9 + 0.5}, "run fact 'params' must be a whole number"),
        ({"params": True}, "run fact 'params' must be a number, got True"),
        ({"entropy": "high"}, "run fact 'entropy' must be a number, got 'high'"),
        ({"entropy": float("nan")}, "run fact 'entropy' must be finite"),
        ({"family": 3}, "run fact 'family' must be text, got 3"),
        ({"status": "done"}, "run status must be one of"),
    ],
)
def test_writer_refuses_facts_that_do_not_fit(store: Store, facts: dict, message: str) -> None:
    """Facts that would break every read of the store are refused, and nothing written."""
    with pytest.raises(BadInputError) as caught:
        InboxWriter(store, "p", "r", facts=facts)
    assert message in str(caught.value)
    assert list(store.inbox_dir.iterdir()) == []


def test_writer_keeps_facts_in_their_column_types(store: Store) -> None:
    facts = {"params": np.int64(7_000_000), "params_non_embedding": 6.0e6, "entropy": 1}
    with InboxWriter(store, "p", "r", facts=facts) as w:
        w.log(0, loss=1.0)
    run = queries.list_runs(store).iloc[0]
    assert (run["params"], run["params_non_embedding"], run["entropy"]) == (7_000_000, 6e6, 1.0)


def test_writer_refuses_points_that_do_not_fit(store: Store) -> None:
    w = InboxWriter(store, "p", "r")
    with pytest.raises(BadInputError, match=r"run 'r', step 3: negative loss -0.5"):
        w.log(3, loss=-0.5)
    with pytest.raises(BadInputError, match="split must be non-empty text"):
        w.log(3, split="", loss=1.0)
    with pytest.raises(BadInputError, match="below 2\\*\\*63"):
        w.log(2**63, loss=1.0)
    with pytest.raises(BadInputError, match=r"losses must not be negative, got -1\.0"):
        w.log_many({"step": [0, 1], "loss": [2.0, -1.0]})
    with pytest.raises(BadInputError, match="losses must not be negative"):
        w.log_many({"step": [0, 1], "loss": -1.0})
    with pytest.raises(BadInputError, match="non-empty split name"):
        w.log_many({"step": [0, 1], "split": ["train", None], "loss": [2.0, 1.0]})
    w.log_many({"step": [0, 1], "loss": [float("nan"), 1.0]})  # a diverged step: no value
    w.close()
    assert queries.points_frame(store)["loss"].isna().tolist() == [True, False]


_INGEST_SCRIPT = """
import sys
from store import Store
from store.ingest import ingest_inbox
store = Store(sys.argv[1])
store.ensure()
print("start", flush=True)
ingest_inbox(store)
print("done", flush=True)
"""


@pytest.mark.slow
def test_killed_ingest_loses_nothing_and_adds_nothing_twice(store: Store) -> None:
    n_runs, per_run = 4, 50_000
    for i in range(n_runs):
        _write_run(store, f"r{i}", per_run, shard=5000)
    total = n_runs * per_run
    repo = Path(__file__).resolve().parents[2]
    interrupted = 0
    for delay in (0.02, 0.08, 0.15):
        proc = subprocess.Popen(
            [sys.executable, "-c", _INGEST_SCRIPT, str(store.root)],
            cwd=repo,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "start"
        time.sleep(delay)
        proc.kill()
        proc.wait()
        interrupted += bool(list(store.inbox_dir.glob("pts-*")))
        # Whatever the moment of the kill: every point is visible exactly once.
        assert queries.list_runs(store, "p")["n_points"].sum() == total
        assert len(queries.points_frame(store, "p")) == total
    assert interrupted >= 1  # at least one kill landed before the ingest finished
    ingest_inbox(store)
    assert _count(store) == total
    frame = queries.points_frame(store, "p")
    assert not frame.duplicated(["run", "split", "step"]).any()


def test_old_records_of_deleted_shards_are_forgotten(store: Store) -> None:
    _write_run(store, "a", 200)
    ingest_inbox(store)
    with store.transaction() as con:  # as if that ingest were an hour ago
        con.execute("UPDATE ingested_shards SET ingested_at = now()::TIMESTAMP - INTERVAL 1 HOUR")
        kept = con.execute("SELECT name FROM ingested_shards LIMIT 1").fetchone()
    assert kept is not None
    (store.inbox_dir / kept[0]).write_bytes(b"")  # a leftover file keeps its record
    _write_run(store, "b", 100)
    ingest_inbox(store)
    with store.connect(read_only=True) as con:
        old = con.execute(
            "SELECT name FROM ingested_shards WHERE ingested_at < now()::TIMESTAMP - "
            "INTERVAL 30 MINUTE"
        ).fetchall()
    assert old == [kept]
    assert len(queries.points_frame(store, "p")) == 300


def test_footers_name_series_and_vouch_for_steps(store: Store) -> None:
    """The writer's footer names each split's series and whether its steps rise."""
    import duckdb

    from store import shardmeta, shards

    with InboxWriter(store, "p", "r") as w:
        w.log_many({"step": [0, 1, 2], "loss": [3.0, 2.0, 1.0]})
        w.log_many({"step": [2, 1], "split": "eval/en", "family": "en", "loss": [2.5, 2.6]})
    files = [str(p) for p in shards.list_shards(store.inbox_dir, shards.POINTS_PREFIX)]
    summary = shardmeta.summarise(duckdb.connect(), files)
    assert summary is not None and not summary.unique  # eval steps fall within the shard
    assert sorted(summary.keys) == [
        ("p", "r", "eval/en", "en", None),
        ("p", "r", "train", None, None),
    ]
    ingest_inbox(store)
    with store.connect(read_only=True) as con:
        rows = con.execute("SELECT split, family FROM series ORDER BY split").fetchall()
    assert rows == [("eval/en", "en"), ("train", None)]
    frame = queries.points_frame(store, "p", splits=["eval/en"])
    assert list(frame["step"]) == [1, 2] and list(frame["family"]) == ["en", "en"]


def test_shards_without_footers_ingest_the_same(store: Store, tmp_path: Path) -> None:
    """A shard from another writer (no footer) takes the scanning path, same result."""
    import pyarrow.parquet as pq

    from store import shards

    _write_run(store, "r", 1000)
    twin = Store(tmp_path / "twin")
    twin.ensure()
    for path in shards.list_shards(store.inbox_dir, shards.POINTS_PREFIX):
        table = pq.read_table(path).replace_schema_metadata(None)
        pq.write_table(table, twin.inbox_dir / path.name)
    for path in shards.list_shards(store.inbox_dir, shards.FACTS_PREFIX):
        shutil.copy(path, twin.inbox_dir / path.name)
    # Relog a step without a footer: the scan path must still find and keep the latest.
    relog = pq.read_table(shards.list_shards(store.inbox_dir, shards.POINTS_PREFIX)[0])
    relog = relog.slice(0, 1).replace_schema_metadata(None)
    relog = relog.set_column(relog.schema.get_field_index("loss"), "loss", [[42.0]])
    pq.write_table(relog, twin.inbox_dir / "pts-99999999999999999999-0-00000000-relog.parquet")
    ingest_inbox(store)
    ingest_inbox(twin)
    mine, theirs = queries.points_frame(store, "p"), queries.points_frame(twin, "p")
    assert len(mine) == len(theirs) == 1000
    assert theirs.loc[0, "loss"] == 42.0
    assert mine["loss"].iloc[1:].tolist() == theirs["loss"].iloc[1:].tolist()


def test_resumed_run_reads_each_step_once_before_ingest(store: Store) -> None:
    """Steps re-logged after a resume show once, with the latest value, before ingest."""
    with InboxWriter(store, "p", "r") as w:
        w.log_many({"step": np.arange(10), "loss": np.full(10, 3.0)})
    ingest_inbox(store)
    with InboxWriter(store, "p", "r") as w:  # resumed from a checkpoint at step 5
        w.log_many({"step": np.arange(5, 12), "loss": np.full(7, 2.0)})
        w.flush()
        w.log_many({"step": [11], "loss": [1.0]})  # and a step logged twice in the inbox
    frame = queries.points_frame(store, "p")
    assert list(frame["step"]) == list(range(12))
    assert list(frame["loss"]) == [3.0] * 5 + [2.0] * 6 + [1.0]
    ingest_inbox(store)
    assert queries.points_frame(store, "p")["loss"].tolist() == frame["loss"].tolist()


@pytest.mark.parametrize("n_runs", [3, 70])  # per-series reads, and the name join past 64
def test_one_series_shards_keep_their_runs_apart(store: Store, n_runs: int) -> None:
    for i in range(n_runs):
        with InboxWriter(store, "p", f"r{i:02d}") as w:
            w.log_many({"step": np.arange(5), "loss": np.full(5, float(i))})
    ingest_inbox(store)
    frame = queries.points_frame(store, "p")
    assert len(frame) == 5 * n_runs
    assert (frame["loss"] == frame["run"].str[1:].astype(float)).all()


def test_finished_wins_when_the_clock_steps_back(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's facts are applied in the order its writer wrote them, even when the wall
    clock stepped back meanwhile (NTP at a VM's boot): shard names never go back."""
    from store import shards

    clock = iter([2_000_000_000_000_000_000, 1_000_000_000_000_000_000] + [1] * 10)
    monkeypatch.setattr(shards, "_clock", lambda: next(clock))
    monkeypatch.setattr(shards, "_LAST_NS", 0)  # restored afterwards, with the real clock
    w = InboxWriter(store, "p", "r", facts={"params": 10})  # 'running' at the later time
    w.close()  # 'finished' when the clock reads earlier
    assert queries.list_runs(store).iloc[0]["status"] == "finished"
    ingest_inbox(store)
    assert queries.list_runs(store).iloc[0]["status"] == "finished"
