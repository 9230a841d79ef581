"""`scalinglab.init` / `run.log` / `run.finish`: any loop's curve through the inbox."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import scalinglab
from store import Store, queries
from store.errors import BadInputError
from store.ingest import ingest_inbox

REPO = Path(__file__).resolve().parents[2]


def curve(store: Store, project: str) -> list[tuple]:
    frame = queries.points_frame(store, project=project).sort_values(["run", "split", "step"])
    return [
        (r.run, r.split, int(r.step), _none(r.tokens), _none(r.lr), _none(r.loss))
        for r in frame.itertuples()
    ]


def _none(value: float) -> float | None:
    return None if value != value else float(value)


def run_row(store: Store, project: str, run: str) -> dict:
    frame = queries.list_runs(store, project=project)
    return frame[frame["run"] == run].iloc[0].to_dict()


def test_a_loop_logs_train_eval_and_lr(store: Store) -> None:
    run = scalinglab.init(
        project="p", run="r", params=1_000_000, tokens_per_step=512, store=store,
        config={"batch_size": 8},
    )  # fmt: skip
    for step in range(4):
        run.log({"loss": 3.0 - step / 10, "lr": 1e-3}, step=step)
    run.log({"val_loss": 2.9}, step=3)
    run.finish()
    assert curve(store, "p") == [
        ("r", "eval", 3, 1536.0, None, 2.9),
        ("r", "train", 0, 0.0, 1e-3, 3.0),
        ("r", "train", 1, 512.0, 1e-3, 2.9),
        ("r", "train", 2, 1024.0, 1e-3, 2.8),
        ("r", "train", 3, 1536.0, 1e-3, 2.7),
    ]
    ingest_inbox(store)
    facts = run_row(store, "p", "r")
    assert facts["status"] == "finished" and facts["params"] == 1_000_000
    assert json.loads(facts["config"]) == {"batch_size": 8, "tokens_per_step": 512}


def test_steps_count_on_and_splits_can_be_named(store: Store) -> None:
    with scalinglab.init(project="p", run="r", store=store) as run:
        run.log({"train/loss": 2.0})
        run.log({"train/loss": 1.5})
        run.log({"loss": 1.7}, step=1, split="eval/en")
    assert curve(store, "p") == [
        ("r", "eval/en", 1, None, None, 1.7),
        ("r", "train", 0, None, None, 2.0),
        ("r", "train", 1, None, None, 1.5),
    ]
    with pytest.raises(BadInputError, match="has finished"):
        run.log({"loss": 1.0})


def test_bad_values_are_refused_and_other_metrics_are_named(store: Store) -> None:
    run = scalinglab.init(project="p", run="r", store=store)
    with pytest.raises(BadInputError, match=r"negative loss -1\.0"):
        run.log({"loss": -1.0}, step=0)
    with pytest.raises(BadInputError, match="metric 'loss' must be a number, got 'low'"):
        run.log({"loss": "low"}, step=0)
    with pytest.warns(UserWarning, match="metric 'grad_norm' is not stored"):
        run.log({"loss": 1.0, "grad_norm": 3.0}, step=0)
    run.finish()
    assert curve(store, "p") == [("r", "train", 0, None, None, 1.0)]
    with pytest.raises(BadInputError, match="tokens_per_step must be a positive number"):
        scalinglab.init(project="p", run="x", store=store, tokens_per_step=0)


def test_a_real_torch_loop(store: Store) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    run = scalinglab.init(project="p", run="linear", params=5, store=store, tokens_per_step=64)
    losses = []
    for step in range(10):
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        run.log({"loss": loss, "lr": optimiser.param_groups[0]["lr"]}, step=step)
        losses.append(loss.item())
    run.finish()
    rows = curve(store, "p")
    assert [r[5] for r in rows] == pytest.approx(losses)
    assert rows[-1][3] == 9 * 64.0


CHILD = textwrap.dedent(
    """
    import sys
    import scalinglab
    run = scalinglab.init(project="p", run="killed", store=sys.argv[1], flush_seconds=0.2)
    for step in range(50):
        run.log({"loss": 1.0 + step}, step=step)
    print("logged", flush=True)
    sys.stdin.read()  # a loop busy elsewhere: only the background flush writes
    """
)


def test_a_killed_job_keeps_everything_up_to_the_last_flush(store: Store) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store.root)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "logged"
        deadline = time.monotonic() + 120  # bounded: a loaded machine may be slow
        while len(curve(store, "p")) < 50 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert [r[5] for r in curve(store, "p")] == [1.0 + s for s in range(50)]
    ingest_inbox(store)
    assert run_row(store, "p", "killed")["status"] == "running"


def test_scalinglab_does_not_import_torch() -> None:
    code = "import sys, scalinglab\nassert 'torch' not in sys.modules\n"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
