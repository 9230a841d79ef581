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
from tests.trainers.helpers import tiny
from trainers.sink import ListSink
from trainers.train import train

GOLDEN = Path(__file__).parent / "golden_cpu_tiny.json"
torch.set_num_threads(1)


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


def test_gradient_accumulation_matches_one_big_batch() -> None:
    whole, accum = ListSink(), ListSink()
    train(tiny(steps=5), sink=whole)
    train(tiny(steps=5, micro_batch=2), sink=accum)
    assert np.allclose(
        [v for _, v in whole.series("loss/train")],
        [v for _, v in accum.series("loss/train")],
        rtol=1e-5,
        atol=1e-5,
    )


def test_mixture_run_logs_eval_per_family(tmp_path: Path) -> None:
    cfg = tiny(
        steps=6,
        eval_every=3,
        data="mixture:ratios=0.7/0.3,vocab=24,seed=2",
        store=str(tmp_path),
        project="mix",
        run="m",
    )
    train(cfg)
    pts = points_frame(Store(tmp_path), project="mix")
    fam = pts[pts["split"].str.startswith("eval/")]
    assert sorted(set(fam["split"])) == ["eval/fam0", "eval/fam1"]
    assert fam.groupby("family")["sampling_ratio"].first().to_dict() == pytest.approx(
        {"fam0": 0.7, "fam1": 0.3}
    )
    assert sorted(fam["step"].unique()) == [2, 5]
    run = list_runs(Store(tmp_path), "mix").iloc[0]
    fam_h = json.loads(run["config"])["family_entropy"]
    assert run["entropy"] == pytest.approx(0.7 * fam_h["fam0"] + 0.3 * fam_h["fam1"])


def test_encoder_decoder_learns_translation_and_records_split(tmp_path: Path) -> None:
    cfg = tiny(
        steps=80,
        lr=1e-2,
        preset="cpu-encdec",
        seq_len=12,
        batch_size=64,
        data="translation:vocab=16,channel_zipf=2.5,seed=0",
        store=str(tmp_path),
        project="nmt",
        run="e",
        model={"d_model": 32, "n_heads": 2},
    )
    summary = train(cfg)
    run = list_runs(Store(tmp_path), "nmt").iloc[0]
    assert run["encoder_params"] == summary.counts["encoder_params"] > 0
    assert run["decoder_params"] == summary.counts["decoder_params"] > run["encoder_params"]
    assert run["params_non_embedding"] == run["encoder_params"] + run["decoder_params"]
    pts = points_frame(Store(tmp_path), project="nmt", splits=["train"]).sort_values("step")
    # Starts near log(vocab) and must move clearly towards the conditional entropy.
    first, last = pts["loss"].iloc[:5].mean(), pts["loss"].iloc[-5:].mean()
    assert last < first - 0.8 and last > summary.entropy - 0.05


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_bf16_compiled_run_matches_eager() -> None:
    """On GPU: bf16 autocast + the Triton CCE train, compiled and eager runs agree."""
    fast, exact = ListSink(), ListSink()
    train(tiny(steps=10, device="cuda"), sink=fast)
    train(tiny(steps=10, device="cuda", compile=False), sink=exact)
    a = np.array([v for _, v in fast.series("loss/train")])
    b = np.array([v for _, v in exact.series("loss/train")])
    assert np.isfinite(a).all() and a[-1] < a[0]
    assert np.allclose(a, b, atol=0.05)
