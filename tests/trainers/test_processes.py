"""Real subprocesses: kill -9 mid-run, 2-process DDP with gloo, the sweep CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from store.core import Store
from store.ingest import ingest_inbox
from store.queries import list_runs, points_frame
from tests.trainers.helpers import tiny
from trainers import sweep
from trainers.sink import ListSink
from trainers.train import TrainConfig, train

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
torch.set_num_threads(1)


def config_json(**kw: object) -> str:
    return json.dumps(asdict(tiny(**kw)))


def train_points(store: Store, project: str) -> list[int]:
    pts = points_frame(store, project=project, splits=["train"])
    return sorted(pts["step"].tolist())


@pytest.mark.slow
def test_killed_trainer_keeps_every_flushed_step(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "trainers",
        "--config",
        config_json(steps=100_000, store=str(tmp_path), project="k", run="killed"),
    ]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = Store(tmp_path)
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"trainer exited early: {proc.stderr.read().decode()[-2000:]}")
            if (tmp_path / "inbox").exists() and len(train_points(store, "k")) >= 20:
                break
            time.sleep(0.5)
        else:
            pytest.fail("no steps reached the store within 150 s")
        time.sleep(1.0)  # let it be mid-flight, with unflushed rows in its buffer
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    seen = train_points(store, "k")
    # Flushed shards are whole: steps form one gap-free prefix 0..n-1, no duplicates.
    assert seen == list(range(len(seen))) and len(seen) >= 20
    pts = points_frame(store, project="k", splits=["train"])
    assert pts["loss"].notna().all() and pts["lr"].notna().all()
    assert list_runs(store, "k").iloc[0]["status"] == "running"
    report = ingest_inbox(store)
    assert report.points == len(seen)
    assert train_points(store, "k") == seen
    assert not list((tmp_path / "inbox").glob("*.parquet"))


@pytest.mark.slow
def test_ddp_two_processes_match_one_process(tmp_path: Path) -> None:
    kw = dict(steps=6, batch_size=8, store=str(tmp_path), project="ddp", run="two", eval_every=3)
    cmd = [
        str(BIN / "torchrun"),
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "trainers",
        "--config",
        config_json(**kw),
    ]
    done = subprocess.run(
        cmd, env={**ENV, "GLOO_SOCKET_IFNAME": "lo"}, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    one = ListSink()
    train(TrainConfig(**json.loads(config_json(**{**kw, "store": None}))), sink=one)
    pts = points_frame(Store(tmp_path), project="ddp")
    two = pts[pts["split"] == "train"].sort_values("step")["loss"].to_numpy()
    assert np.allclose(two, [v for _, v in one.series("loss/train")], rtol=1e-5, atol=1e-5)
    ev = pts[pts["split"] == "eval"].sort_values("step")["loss"].to_numpy()
    assert np.allclose(ev, [v for _, v in one.series("loss/eval")], rtol=1e-5, atol=1e-5)
    assert pts.groupby(["split", "step"]).size().max() == 1  # only rank 0 wrote


SPEC = """
[sweep]
name = "t"
project = "spec-project"

[base]
data = "markov:vocab=32,seed=0"
steps = 4
batch_size = 4
seq_len = 16
eval_every = 0
eval_batches = 1
threads = 1

[grid]
preset = ["cpu/0", "cpu-tiny"]
"""


@pytest.mark.slow
def test_sweep_cli_runs_then_skips_finished(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    cmd = [
        str(BIN / "scalinglab"),
        "sweep",
        str(spec),
        "--store",
        str(tmp_path / "st"),
        "--project",
        "demo",
    ]
    first = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=240)
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads(first.stdout.strip().splitlines()[-1]) == {
        "t-cpu-0": "finished",
        "t-cpu-tiny": "finished",
    }
    # Progress goes to stderr, as plain lines on a pipe: runs done of total, each step.
    assert "sweep demo [0/2 runs done] demo/t-cpu-0: started (4 steps)" in first.stderr
    assert "sweep demo [1/2 runs done] demo/t-cpu-tiny: step 4/4  loss " in first.stderr
    assert "sweep demo [2/2 runs done] demo/t-cpu-tiny: finished at step 4/4" in first.stderr
    runs = list_runs(Store(tmp_path / "st"), "demo")
    assert sorted(runs["run"]) == ["t-cpu-0", "t-cpu-tiny"]
    assert (runs["status"] == "finished").all() and (runs["n_points"] >= 4).all()
    again = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=240)
    assert json.loads(again.stdout.strip().splitlines()[-1]) == {
        "t-cpu-0": "skipped",
        "t-cpu-tiny": "skipped",
    }
    assert "[2/2 runs done] demo/t-cpu-tiny: skipped (already finished)" in again.stderr


def test_shipped_specs_expand() -> None:
    names = sorted(p.stem for p in sweep.SWEEPS_DIR.glob("*.toml"))
    for kind in ("size", "schedules", "mixture", "encdec"):
        assert {f"{kind}-cpu", f"{kind}-gpu"} <= set(names)
    assert "demo-cpu" in names
    for name in names:
        configs = sweep.load(name, store="/nonexistent")
        assert len(configs) >= 3, name
        assert len({c.run for c in configs}) == len(configs)
        for c in configs[:2]:
            c.schedule_spec()  # every schedule in the specs parses
    demo = sweep.load("demo-cpu", project="demo")
    assert all(c.project == "demo" for c in demo) and len(demo) >= 4


@pytest.mark.slow
def test_train_cli_streams_into_the_store(tmp_path: Path) -> None:
    cmd = [
        str(BIN / "scalinglab"),
        "train",
        "--preset",
        "cpu-tiny",
        "--data",
        "markov:vocab=32,seed=1",
        "--steps",
        "6",
        "--batch-size",
        "4",
        "--seq-len",
        "16",
        "--eval-every",
        "3",
        "--store",
        str(tmp_path),
        "--project",
        "cli",
        "--run",
        "r1",
        "--schedule",
        "wsd:peak=1e-3,warmup=1,decay=2,final=1e-4",
        "--threads",
        "1",
    ]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["steps_done"] == 6
    assert "train cli/r1: step 1/6  loss " in done.stderr
    assert "train cli/r1: step 6/6  loss " in done.stderr and " tok/s" in done.stderr
    pts = points_frame(Store(tmp_path), project="cli")
    assert sorted(pts[pts["split"] == "train"]["step"]) == list(range(6))
    assert sorted(pts[pts["split"] == "eval"]["step"]) == [2, 5]
    bad = subprocess.run(
        [*cmd[:2], "--preset", "gpt-7t", "--store", str(tmp_path)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert bad.returncode == 2 and "unknown preset" in bad.stderr
