"""What train and sweep print while they work: plain lines on a pipe (a line every few
seconds, the first and last step, one per run start and end), the shipped specs in
`sweep --help`."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from trainers.progress import PlainDisplay, make_display
from trainers.sweeps import shipped

BIN = Path(sys.executable).parent


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def metrics(step: int, loss: float, **extra: float) -> dict[str, float]:
    return {"loss/train": loss, "tokens": (step + 1) * 1000.0, **extra}


def test_plain_lines_every_few_seconds_with_first_and_last_step() -> None:
    out, clock = io.StringIO(), Clock()
    display = PlainDisplay("sweep demo", 3, out, every_s=5.0, clock=clock)
    display.run_skipped("demo/a")
    display.run_started("demo/b", 10)
    for step in range(10):
        clock.now += 1.0  # one step a second: 1000 tokens/s
        extra = {"loss/eval": 2.5} if step == 4 else {}
        display.step(step, metrics(step, 3.0 - step / 10, **extra))
    display.run_ended("demo/b", "finished")
    lines = out.getvalue().splitlines()
    assert lines[0] == "sweep demo [1/3 runs done] demo/a: skipped (already finished)"
    assert lines[1] == "sweep demo [1/3 runs done] demo/b: started (10 steps)"
    steps = [line for line in lines if ": step " in line]
    # The first step, then one line per 5 s (steps 6 and 10, the last).
    assert [line.split(": step ")[1].split()[0] for line in steps] == ["1/10", "6/10", "10/10"]
    assert steps[1] == (
        "sweep demo [1/3 runs done] demo/b: step 6/10  loss 2.5000  eval 2.5000  1.0k tok/s  eta 4s"
    )
    assert lines[-1] == (
        "sweep demo [2/3 runs done] demo/b: finished at step 10/10"
        " (loss 2.1000, eval 2.5000) in 10s"
    )


def test_a_single_train_run_has_no_run_count_and_a_pipe_gets_plain_lines() -> None:
    out = io.StringIO()  # not a terminal
    display = make_display("train", 1, out)
    assert isinstance(display, PlainDisplay)
    display.run_started("p/r", 2)
    display.step(0, metrics(0, 4.0))
    display.run_ended("p/r", "interrupted")
    lines = out.getvalue().splitlines()
    assert lines[0] == "train p/r: started (2 steps)"
    assert lines[1].startswith("train p/r: step 1/2  loss 4.0000  eval -")
    assert lines[2].startswith("train p/r: interrupted at step 1/2 (loss 4.0000, eval -) in ")


def test_sweep_help_lists_every_shipped_spec_with_its_description() -> None:
    specs = shipped()
    assert {name for name, _, _ in specs} == {
        p.stem for p in (Path(__file__).parents[2] / "trainers" / "sweeps").glob("*.toml")
    }
    assert all(description and runs > 0 for _, description, runs in specs)
    env = {**os.environ, "COLUMNS": "120", "TERM": "dumb"}
    done = subprocess.run(
        [str(BIN / "scalinglab"), "sweep", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for name, description, runs in specs:
        line = next((ln for ln in lines if ln.split()[:1] == [name]), None)
        assert line is not None, name
        assert description in line and f"{runs} runs" in line
