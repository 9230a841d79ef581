"""The training loop against a real store: loss goes down, every step lands, LR is exact,
golden first losses, resume continues the curve."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fitting.schedules import ScheduleSpec
from store.core import Store
from store.ingest import ingest_inbox
from store.queries import list_runs, points_frame
from trainers.sink import ListSink
from trainers.train import TrainConfig, train

GOLDEN = Path(__file__).parent / "golden_cpu_tiny.json"
torch.set_num_threads(1)


def tiny(**kw: object) -> TrainConfig:
    base = dict(
        preset="cpu-tiny",
        data="markov:vocab=64,seed=0",
        steps=20,
        batch_size=8,
        seq_len=32,
        eval_every=0,
        eval_batches=2,
        threads=1,
    )
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_cpu_tiny_lowers_loss_and_lands_every_step(tmp_path: Path) -> None:
    cfg = tiny(steps=80, lr=1e-2, eval_every=20, store=str(tmp_path), project="t", run="r")
    summary = train(cfg)
    assert summary.status == "finished"
    store = Store(tmp_path)
    for when in ("inbox", "ingested"):
        pts = points_frame(store, project="t")
        tr = pts[pts["split"] == "train"].sort_values("step")
        assert tr["step"].tolist() == list(range(80)), when
        assert np.array_equal(tr["lr"].to_numpy(), cfg.schedule_spec().lr(np.arange(80)))
        assert np.allclose(tr["tokens"], (np.arange(80) + 1) * 8 * 32)
        assert np.all(np.diff(tr["flops"]) > 0)
        losses = tr["loss"].to_numpy()
        assert losses[-10:].mean() < losses[:5].mean() - 0.3
        ev = pts[pts["split"] == "eval"]
        assert ev["step"].tolist() == [19, 39, 59, 79]
        assert ev["loss"].iloc[-1] == pytest.approx(summary.eval_loss["eval"])
        if when == "inbox":
            ingest_inbox(store)
    run = list_runs(store, "t").iloc[0]
    assert run["status"] == "finished"
    assert run["params"] == summary.counts["params"] > run["params_non_embedding"] > 0
    assert run["entropy"] == pytest.approx(summary.entropy) and 0 < run["entropy"] < np.log(64)
    assert ScheduleSpec.from_dict(json.loads(run["schedule"])) == cfg.schedule_spec()
    assert json.loads(run["source"])["kind"] == "markov"
    assert json.loads(run["config"])["model"]["d_model"] == 32
    assert run["seed"] == 0 and run["code_version"]


@pytest.mark.parametrize(
    "schedule",
    [
        "constant:peak=1e-3",
        "cosine:peak=2e-3,warmup=3,final=1e-4",
        "linear:peak=2e-3,warmup=2,final=0",
        "wsd:peak=2e-3,warmup=2,decay=5,final=1e-4,shape=exponential",
        "multistep:peak=2e-3,milestones=4;8,gamma=0.5",
    ],
)
def test_logged_lr_is_the_exact_lr_of_the_spec(schedule: str) -> None:
    sink = ListSink()
    seen: list[float] = []
    cfg = tiny(steps=12, schedule=schedule, preset="cpu/0")

    def on_step(step: int, metrics: dict[str, float]) -> None:
        seen.append(metrics["lr"])

    train(cfg, sink=sink, on_step=on_step)
    spec = ScheduleSpec.parse(f"{schedule},total=12")
    expected = spec.lr(np.arange(12))
    assert [v for _, v in sink.series("lr")] == expected.tolist() == seen


def test_golden_first_20_losses() -> None:
    """Same seed, same first 20 losses: run-to-run exactly, and against the checked-in curve."""
    a, b = ListSink(), ListSink()
    train(tiny(), sink=a)
    train(tiny(), sink=b)
    la = [v for _, v in a.series("loss/train")]
    assert la == [v for _, v in b.series("loss/train")]
    golden = json.loads(GOLDEN.read_text())
    assert np.allclose(la, golden["loss"], rtol=2e-4, atol=2e-4)
    c = ListSink()
    train(tiny(seed=1), sink=c)
    assert [v for _, v in c.series("loss/train")] != la


class Interrupt(Exception):
    pass


def test_resume_continues_the_curve(tmp_path: Path) -> None:
    straight = ListSink()
    train(tiny(steps=24, store=str(tmp_path / "a"), checkpoint_every=6), sink=straight)

    cfg = tiny(steps=24, store=str(tmp_path / "b"), checkpoint_every=6)

    def crash(step: int, metrics: dict[str, float]) -> None:
        if step == 14:  # after the checkpoint of step 11, before the one of step 17
            raise Interrupt

    first = ListSink()
    with pytest.raises(Interrupt):
        train(cfg, sink=first, on_step=crash)
    assert first.status == "failed"
    second = ListSink()
    summary = train(cfg, sink=second)
    assert summary.start_step == 12 and summary.steps_done == 12
    want = dict(straight.series("loss/train"))
    got = dict(second.series("loss/train"))
    assert sorted(got) == list(range(12, 24))
    assert np.allclose([got[s] for s in got], [want[s] for s in got], rtol=1e-5, atol=1e-6)
    assert second.series("lr") == [(s, v) for s, v in straight.series("lr") if s >= 12]
