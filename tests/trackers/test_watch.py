"""`scalinglab watch`: runs followed while they are written, through the inbox.

The TensorBoard tests drive `Watcher.poll()` with a clock of their own and flush the
writer before each poll, so nothing depends on timing; the W&B test waits (bounded) for
the real wandb process to write its file."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from store import Store, queries
from store.ingest import ingest_inbox
from store.trackers.watch import Watcher

from .conftest import cli
from .wandb_runs import SCRIPT, wandb_env

tensorboard = pytest.importorskip("torch.utils.tensorboard")
pytest.importorskip("tensorboard")


def curve(store: Store, project: str) -> dict[str, list[tuple]]:
    frame = queries.points_frame(store, project=project).sort_values(["run", "split", "step"])
    out: dict[str, list[tuple]] = {}
    for r in frame.itertuples():
        lr = None if r.lr != r.lr else float(r.lr)
        out.setdefault(f"{r.run}:{r.split}", []).append((int(r.step), lr, float(r.loss)))
    return out


def statuses(store: Store, project: str) -> dict[str, str]:
    frame = queries.list_runs(store, project=project)
    return dict(zip(frame["run"], frame["status"], strict=True))


def log_steps(writer: object, steps: range) -> None:
    for step in steps:
        writer.add_scalar("train/loss", 4.0 - step / 10, step)  # type: ignore[attr-defined]
        writer.add_scalar("lr", 0.5, step)  # type: ignore[attr-defined]
    writer.flush()  # type: ignore[attr-defined]  # blocks until the events are on disk


def test_tensorboard_runs_stream_join_and_finish(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    now = [0.0]
    first = tensorboard.SummaryWriter(str(root / "r1"))
    log_steps(first, range(0, 5))
    watcher = Watcher(store, root, "live", idle_finish=60, clock=lambda: now[0])
    report = watcher.poll()
    assert report.joined == ["r1"]
    # Step 4 is held back: its scalars may not all be written yet.
    assert curve(store, "live") == {"r1:train": [(s, 0.5, 4.0 - s / 10) for s in range(4)]}
    assert statuses(store, "live") == {"r1": "running"}

    log_steps(first, range(5, 8))
    second = tensorboard.SummaryWriter(str(root / "r2"))
    log_steps(second, range(0, 3))
    now[0] = 30.0
    report = watcher.poll()
    assert report.joined == ["r2"] and report.finished == []
    seen = curve(store, "live")
    assert [p[0] for p in seen["r1:train"]] == list(range(7))
    assert [p[0] for p in seen["r2:train"]] == [0, 1]

    first.close()
    second.close()
    now[0] = 200.0  # nothing grew for longer than idle_finish: both finished
    report = watcher.poll()
    assert sorted(report.finished) == [("r1", "finished"), ("r2", "finished")]
    seen = curve(store, "live")
    assert [p[0] for p in seen["r1:train"]] == list(range(8))
    assert [p[0] for p in seen["r2:train"]] == [0, 1, 2]
    assert statuses(store, "live") == {"r1": "finished", "r2": "finished"}
    ingest_inbox(store)
    assert statuses(store, "live") == {"r1": "finished", "r2": "finished"}
    assert watcher.poll().points == 0  # nothing new, nothing written twice


def test_the_watch_command(store: Store, tmp_path: Path) -> None:
    writer = tensorboard.SummaryWriter(str(tmp_path / "runs" / "r"))
    log_steps(writer, range(3))
    writer.close()
    code, out, err = cli(
        store, "watch", str(tmp_path / "runs"), "-p", "w", "--polls", "1", "--idle-finish", "0"
    )
    assert code == 0, err
    assert out.splitlines() == ["r: following", "r: finished", "project 'w': 1 runs followed"]
    assert [p[0] for p in curve(store, "w")["r:train"]] == [0, 1, 2]
    code, _, err = cli(store, "watch", str(tmp_path / "nothing"), "--polls", "1")
    assert code == 2 and "no such file or folder" in err


def poll_until(watcher: Watcher, done: object, what: str) -> None:
    deadline = time.monotonic() + 120  # bounded: wandb's service may start slowly
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        watcher.poll()
        time.sleep(0.2)


def test_a_live_wandb_run_streams_then_finishes(store: Store, tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    import json

    root = tmp_path / "project"
    root.mkdir()
    spec = [("live", 1000, 0.0, 20, False)]
    child = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(root), json.dumps(spec)],
        env=wandb_env(root),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "logged"
        watcher = Watcher(store, root, "w")
        # wandb commits a step's row when the next step begins: 19 of 20 while it runs.
        poll_until(watcher, lambda: len(curve(store, "w").get("live:train", [])) == 19, "points")
        assert statuses(store, "w") == {"live": "running"}
        assert child.stdin is not None
        child.stdin.close()  # the script ends: wandb finishes the run and writes its exit
        assert child.wait(timeout=120) == 0
        poll_until(watcher, lambda: statuses(store, "w") == {"live": "finished"}, "the end")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    seen = curve(store, "w")
    assert [p[2] for p in seen["live:train"]] == pytest.approx([4.0 - s / 100 for s in range(20)])
    assert [p[0] for p in seen["live:eval"]] == [0, 10]
