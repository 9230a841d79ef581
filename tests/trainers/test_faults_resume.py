"""Trainer faults: kills and signals never leave a gap in a resumed curve or a run falsely
`running`; checkpoints that hold more than weights are refused unloaded.

Every wait here is on the filesystem or the store (bounded), never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from store.core import Store
from store.inbox import InboxWriter
from store.queries import list_runs, points_frame
from tests.trainers.helpers import tiny
from trainers import checkpoint, runlock, sweep
from trainers.sink import ListSink, StoreSink
from trainers.train import TrainConfig, train

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
torch.set_num_threads(1)


def steps_of(store: Store, project: str, split: str) -> list[int]:
    pts = points_frame(store, project=project, splits=[split])
    return sorted(pts["step"].tolist())


def status_of(store: Store, project: str, run: str) -> str:
    runs = list_runs(store, project)
    return str(runs.set_index("run").loc[run, "status"])


def eval_steps(cfg: TrainConfig) -> list[int]:
    every = cfg.eval_every
    return sorted({s for s in range(cfg.steps) if (s + 1) % every == 0} | {cfg.steps - 1})


def start_trainer(cfg: TrainConfig) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "trainers", "--config", json.dumps(asdict(cfg))]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(what: str, ready: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    """Poll until `ready()` (bounded); fail with the trainer's stderr if it exits first."""
    deadline = time.monotonic() + 180
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"trainer exited before {what}: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} within 180 s")
        time.sleep(0.01)


def ckpt_path(cfg: TrainConfig) -> Path:
    return checkpoint.checkpoint_dir(cfg.store, cfg.project, cfg.run) / checkpoint.FILE


# A run long enough that it is still going when its first checkpoint appears, short
# enough to resume to the end in a few seconds.
def long_run(tmp_path: Path, run: str) -> TrainConfig:
    return tiny(
        steps=400, eval_every=10, checkpoint_every=20, store=str(tmp_path), project="f", run=run
    )


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_leaves_no_gap(tmp_path: Path) -> None:
    cfg = long_run(tmp_path, "killed")
    proc = start_trainer(cfg)
    try:
        wait_for("a checkpoint", ckpt_path(cfg).exists, proc)
        assert proc.poll() is None, "the run ended before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    store = Store(tmp_path)
    saved = int(checkpoint.load(ckpt_path(cfg).parent)["step"])
    # Everything up to the checkpoint was flushed before it was written.
    assert set(range(saved + 1)) <= set(steps_of(store, "f", "train"))
    assert {s for s in eval_steps(cfg) if s <= saved} <= set(steps_of(store, "f", "eval"))
    assert status_of(store, "f", "killed") == "running"  # nothing could say otherwise yet

    # The dead trainer's lock is free: the store is told, once.
    assert runlock.mark_stale(tmp_path, "f") == ["killed"]
    assert status_of(store, "f", "killed") == "interrupted"
    assert runlock.mark_stale(tmp_path, "f") == []

    summary = train(cfg)  # the next start resumes after the checkpoint
    assert summary.status == "finished" and summary.start_step == saved + 1
    assert steps_of(store, "f", "train") == list(range(cfg.steps))  # no gap, no duplicate
    assert steps_of(store, "f", "eval") == eval_steps(cfg)
    assert status_of(store, "f", "killed") == "finished"
    assert points_frame(store, project="f", splits=["train"])["loss"].notna().all()


@pytest.mark.slow
def test_sigterm_stops_cleanly_as_interrupted_and_resumes_to_the_end(tmp_path: Path) -> None:
    cfg = long_run(tmp_path, "termed")
    proc = start_trainer(cfg)
    try:
        wait_for("a checkpoint", ckpt_path(cfg).exists, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-2000:]
    store = Store(tmp_path)
    assert status_of(store, "f", "termed") == "interrupted"
    # It checkpointed the step it stopped at, after flushing it: a resume redoes nothing.
    saved = int(checkpoint.load(ckpt_path(cfg).parent)["step"])
    assert steps_of(store, "f", "train") == list(range(saved + 1))
    assert runlock.mark_stale(tmp_path, "f") == []  # it said so itself

    summary = train(cfg)
    assert summary.status == "finished" and summary.start_step == saved + 1
    assert steps_of(store, "f", "train") == list(range(cfg.steps))
    assert steps_of(store, "f", "eval") == eval_steps(cfg)


def test_sigint_stops_after_the_step_checkpoints_it_and_resume_continues(
    tmp_path: Path,
) -> None:
    cfg = tiny(steps=12, checkpoint_every=100, store=str(tmp_path), project="i", run="r")

    def interrupt_at_5(step: int, metrics: dict[str, float]) -> None:
        if step == 5:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would

    before = signal.getsignal(signal.SIGINT)
    first = ListSink()
    summary = train(cfg, sink=first, on_step=interrupt_at_5)
    assert summary.status == "interrupted" and first.status == "interrupted"
    assert [s for s, _ in first.rows] == list(range(6)) and summary.steps_done == 6
    assert checkpoint.load(ckpt_path(cfg).parent)["step"] == 5
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back

    rest = ListSink()
    again = train(cfg, sink=rest)
    assert again.status == "finished" and again.start_step == 6
    assert [s for s, _ in rest.rows] == list(range(6, 12))
    whole = ListSink()
    train(tiny(steps=12), sink=whole)
    # The resumed curve is the uninterrupted one.
    stitched = [m["loss/train"] for _, m in first.rows + rest.rows]
    assert np.allclose(stitched, [v for _, v in whole.series("loss/train")], rtol=1e-5)


def test_every_logged_point_is_flushed_before_each_checkpoint(tmp_path: Path) -> None:
    cfg = tiny(
        steps=16, eval_every=4, checkpoint_every=4, store=str(tmp_path), project="c", run="r"
    )
    # A writer that never flushes on its own: only the trainer's flush can put rows out.
    sink = StoreSink(tmp_path, "c", "r", flush_seconds=3600)
    store, seen = Store(tmp_path), []

    def check(step: int, metrics: dict[str, float]) -> None:
        state = checkpoint.load(ckpt_path(cfg).parent)
        if state is None:
            return
        saved = int(state["step"])
        seen.append(saved)
        assert steps_of(store, "c", "train") == list(range(saved + 1)), step
        assert steps_of(store, "c", "eval") == list(range(3, saved + 1, 4)), step

    assert train(cfg, sink=sink, on_step=check).status == "finished"
    assert sorted(set(seen)) == [3, 7, 11]


def test_a_run_is_trained_by_one_process_at_a_time(tmp_path: Path) -> None:
    cfg = tiny(steps=3, store=str(tmp_path), project="b", run="r")
    holder = runlock.RunLock(tmp_path, "b", "r")
    holder.acquire()
    try:
        with pytest.raises(runlock.RunBusyError, match=r"b/r is being trained by another proc"):
            train(cfg)
    finally:
        holder.release()
    assert not ckpt_path(cfg).exists() and list_runs(Store(tmp_path), "b").empty
    assert train(cfg).status == "finished"  # free again


def test_mark_stale_judges_only_trainer_runs_whose_lock_is_free(tmp_path: Path) -> None:
    InboxWriter(tmp_path, "m", "live")  # status running, lock held
    lock = runlock.RunLock(tmp_path, "m", "live")
    lock.acquire()
    InboxWriter(tmp_path, "m", "dead")  # status running, a lock file, the lock free
    gone = runlock.RunLock(tmp_path, "m", "dead")
    gone.acquire()
    gone.release()
    InboxWriter(tmp_path, "m", "foreign")  # no lock file: another writer's run
    done = InboxWriter(tmp_path, "m", "done")
    done.close()
    try:
        assert runlock.mark_stale(tmp_path, "m") == ["dead"]
        statuses = list_runs(Store(tmp_path), "m").set_index("run")["status"].to_dict()
        assert statuses == {
            "live": "running",
            "dead": "interrupted",
            "foreign": "running",
            "done": "finished",
        }
    finally:
        lock.release()
    assert runlock.mark_stale(tmp_path, "m", runs=["foreign"]) == []
    assert runlock.mark_stale(tmp_path, "m") == ["live"]  # its holder let go


def test_sweep_stops_at_an_interrupted_run_and_starts_no_other(tmp_path: Path) -> None:
    spec = {
        "sweep": {"name": "s", "project": "p"},
        "base": {"steps": 6, "batch_size": 4, "seq_len": 16, "eval_every": 0, "threads": 1},
        "grid": {"seed": [0, 1]},
    }
    configs = sweep.expand(spec, store=str(tmp_path))

    def interrupt_at_2(step: int, metrics: dict[str, float]) -> None:
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    result = sweep.run_sweep(configs, gpus=0, on_step=interrupt_at_2)
    assert result == {"s-0": "interrupted"}
    assert list_runs(Store(tmp_path), "p").set_index("run")["status"].to_dict() == {
        "s-0": "interrupted"
    }
    assert signal.getsignal(signal.SIGTERM) is before


def test_worker_exit_codes_map_to_run_statuses() -> None:
    assert sweep.status_of_exit(0) == "finished"
    assert sweep.status_of_exit(130) == sweep.status_of_exit(143) == "interrupted"
    assert sweep.status_of_exit(-9) == "interrupted"
    assert sweep.status_of_exit(1) == sweep.status_of_exit(2) == "failed"


# --- checkpoints load weights only ---------------------------------------------------


@dataclass
class Meta:
    name: str
    scale: float


class Payload:
    """Unpickling this would create `marker`: the proof that a load ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_a_checkpoint_with_a_pickled_object_is_refused_unloaded(tmp_path: Path) -> None:
    cfg = tiny(steps=3, store=str(tmp_path), project="x", run="r")
    folder = ckpt_path(cfg).parent
    folder.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    model = torch.nn.Linear(2, 2)
    torch.save(
        {"model": model.state_dict(), "optimizer": {}, "step": 1, "x": Payload(marker)},
        folder / checkpoint.FILE,
    )
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load(folder)
    message = str(err.value)
    assert str(folder / checkpoint.FILE) in message
    assert "refused to load" in message and "could run code" in message
    assert "--no-resume" in message
    assert not marker.exists()
    with pytest.raises(checkpoint.CheckpointError, match="refused to load"):
        train(cfg)  # the trainer refuses it too, before writing anything
    assert not marker.exists() and list_runs(Store(tmp_path), "x").empty


def test_unreadable_and_foreign_checkpoints_are_named_not_loaded(tmp_path: Path) -> None:
    (tmp_path / checkpoint.FILE).write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(checkpoint.CheckpointError, match="not a readable checkpoint"):
        checkpoint.load(tmp_path)
    (tmp_path / checkpoint.FILE).write_bytes(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="not a readable checkpoint"):
        checkpoint.load(tmp_path)
    torch.save({"weights": torch.zeros(2)}, tmp_path / checkpoint.FILE)
    with pytest.raises(checkpoint.CheckpointError, match="not a scalinglab checkpoint"):
        checkpoint.load(tmp_path)


def test_metadata_is_saved_as_plain_data_and_loads_weights_only(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    extra = {
        "meta": Meta("m", 0.5),
        "loss": np.float32(1.5),
        "hist": np.arange(3),
        "where": tmp_path,
        "betas": (0.9, 0.95),
    }
    checkpoint.save(tmp_path, model, opt, np.int64(7), extra=extra)
    state = torch.load(tmp_path / checkpoint.FILE, weights_only=True)  # what load does
    assert state["step"] == 7 and type(state["step"]) is int
    assert state["meta"] == {"name": "m", "scale": 0.5}
    assert state["loss"] == 1.5 and state["hist"] == [0, 1, 2]
    assert state["where"] == str(tmp_path) and state["betas"] == [0.9, 0.95]
    again = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    again.load_state_dict(checkpoint.load(tmp_path)["optimizer"])
    assert again.state_dict()["param_groups"][0]["betas"] == (0.9, 0.95)
    with pytest.raises(TypeError, match="not plain data"):
        checkpoint.save(tmp_path, model, opt, 8, extra={"bad": object()})
    assert checkpoint.load(tmp_path)["step"] == 7  # the failed save left the old one


@pytest.mark.slow
def test_train_cli_refuses_an_unsafe_checkpoint_with_exit_2(tmp_path: Path) -> None:
    folder = checkpoint.checkpoint_dir(tmp_path, "default", "r")
    folder.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    torch.save(
        {"model": {}, "optimizer": {}, "step": 0, "x": Payload(marker)}, folder / checkpoint.FILE
    )
    cmd = [
        str(BIN / "scalinglab"),
        "train",
        "--store",
        str(tmp_path),
        "--run",
        "r",
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--seq-len",
        "16",
    ]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=240)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "refused to load" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists() and done.stdout == ""


SPEC = """
[sweep]
name = "t"
project = "sw"

[base]
data = "markov:vocab=64,seed=0"
steps = 400
batch_size = 8
seq_len = 32
eval_every = 0
checkpoint_every = 20
threads = 1

[grid]
seed = [0, 1]
"""


@pytest.mark.slow
def test_sigterm_of_the_sweep_cli_stops_its_run_and_starts_no_other(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    store = tmp_path / "st"
    cmd = [str(BIN / "scalinglab"), "sweep", str(spec), "--store", str(store)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = checkpoint.checkpoint_dir(store, "sw", "t-0") / checkpoint.FILE
    try:
        wait_for("the first run's checkpoint", first.exists, proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-2000:]
    assert json.loads(out.decode().strip().splitlines()[-1]) == {"t-0": "interrupted"}
    assert "sweep interrupted: 0/2 runs done; run the same command again" in err.decode()
    assert "Traceback" not in err.decode()
    assert list_runs(Store(store), "sw").set_index("run")["status"].to_dict() == {
        "t-0": "interrupted"
    }
    assert not checkpoint.checkpoint_dir(store, "sw", "t-1").exists()


STOPPER = """
import os, signal, sys
from trainers.stopping import StopRequest
with StopRequest() as stop:
    for sig in sys.argv[1:]:
        os.kill(os.getpid(), getattr(signal, sig))
    print(stop.signum, stop.exit_code)
"""


@pytest.mark.parametrize(
    ("signals", "rc", "out"),
    [
        (["SIGTERM"], 0, f"{signal.SIGTERM} {128 + signal.SIGTERM}"),
        (["SIGINT", "SIGTERM"], 0, f"{signal.SIGINT} 130"),  # Ctrl-C, then the parent's TERM
        (["SIGTERM", "SIGTERM"], -signal.SIGTERM, ""),  # asked twice: ends at once
        (["SIGINT", "SIGINT"], -signal.SIGINT, ""),
    ],
)
def test_a_repeated_signal_ends_the_process_a_different_one_does_not(
    signals: list[str], rc: int, out: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", STOPPER, *signals], env=ENV, capture_output=True, text=True
    )
    assert (done.returncode, done.stdout.strip()) == (rc, out), done.stderr
