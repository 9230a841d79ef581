"""ScalingLabCallback in real (tiny, CPU) Hugging Face Trainer runs: the store holds
exactly what the Trainer logged (its own `state.log_history`), the run's facts, and how
the training ended."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from transformers import Trainer, TrainerCallback

import scalinglab.integrations.transformers as transformers_integration
from fitting.schedules import ScheduleSpec
from scalinglab.integrations.transformers import ScalingLabCallback
from store import Store, queries
from store.ingest import ingest_inbox
from tests.integrations import children
from tests.integrations.tiny_hf import (
    SEQ_LEN,
    TOKENS_PER_STEP,
    Tokens,
    tiny_gpt2,
    training_args,
)


def curve(store: Store, project: str, split: str) -> list[tuple]:
    """(step, tokens, flops, lr, loss) of one split, NaN as None."""
    frame = queries.points_frame(store, project=project, splits=[split]).sort_values("step")
    return [
        (int(r.step), *(None if v != v else float(v) for v in (r.tokens, r.flops, r.lr, r.loss)))
        for r in frame.itertuples()
    ]


def run_row(store: Store, project: str, run: str) -> dict:
    ingest_inbox(store)
    frame = queries.list_runs(store, project=project)
    return frame[frame["run"] == run].iloc[0].to_dict()


def test_a_trainer_run_is_stored_as_the_trainer_logged_it(store: Store, tmp_path: Path) -> None:
    model = tiny_gpt2()
    callback = ScalingLabCallback(project="p", run="gpt2-tiny", store=store, seq_len=SEQ_LEN)
    args = training_args(tmp_path / "out", include_num_input_tokens_seen=True)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Tokens(256, seed=1),
        eval_dataset=Tokens(16, seed=2),
        callbacks=[callback],
    )
    trainer.train()
    history = trainer.state.log_history
    train_logs = [h for h in history if "loss" in h]
    eval_logs = [h for h in history if "eval_loss" in h]
    assert [h["step"] for h in train_logs] == list(range(2, 21, 2))
    assert [h["step"] for h in eval_logs] == [5, 10, 15, 20]

    # Every train log, exactly, at the index of its last update (global_step - 1); the
    # closing summary's run-average `train_loss` is no point. The tokens are the Trainer's
    # own count, the FLOPs its 6 N D with N without the embeddings.
    per_token = 6 * model.num_parameters(exclude_embeddings=True)
    assert curve(store, "p", "train") == [
        (
            h["step"] - 1,
            float(h["num_input_tokens_seen"]),
            float(per_token * h["num_input_tokens_seen"]),
            h["learning_rate"],
            h["loss"],
        )
        for h in train_logs
    ]
    assert curve(store, "p", "train")[-1][2] == history[-1]["total_flos"]
    assert curve(store, "p", "eval") == [
        (h["step"] - 1, float(h["step"] * TOKENS_PER_STEP), None, None, h["eval_loss"])
        for h in eval_logs
    ]

    facts = run_row(store, "p", "gpt2-tiny")
    assert facts["status"] == "finished"
    assert facts["params"] == model.num_parameters() == 15_328
    assert facts["params_non_embedding"] == model.num_parameters(exclude_embeddings=True)
    assert facts["seed"] == 3
    config = json.loads(facts["config"])
    assert {k: config[k] for k in ("lr", "batch_size", "micro_batch", "steps", "seq_len")} == {
        "lr": 1e-3, "batch_size": 8, "micro_batch": 4, "steps": 20, "seq_len": SEQ_LEN,
    }  # fmt: skip
    assert config["tokens_per_step"] == TOKENS_PER_STEP == 128
    assert config["model"]["n_embd"] == 32 and config["lr_scheduler_type"] == "cosine"
    assert json.loads(facts["source"])["writer"] == "scalinglab.integrations.transformers"
    # The recorded schedule gives the LR the Trainer logged, at every stored step.
    spec = ScheduleSpec.from_dict(json.loads(facts["schedule"]))
    assert (spec.kind, spec.warmup_steps, spec.total_steps) == ("cosine", 4, 20)
    assert spec.lr([h["step"] - 1 for h in train_logs]).tolist() == pytest.approx(
        [h["learning_rate"] for h in train_logs], rel=1e-12
    )


@pytest.mark.parametrize(
    ("scheduler", "options", "kind"),
    [
        ("linear", {}, "linear"),
        ("constant_with_warmup", {}, "constant"),
        ("cosine_with_min_lr", {"min_lr_rate": 0.1}, "cosine"),
    ],
)
def test_the_recorded_schedule_is_the_trainers(
    store: Store, tmp_path: Path, scheduler: str, options: dict, kind: str
) -> None:
    args = training_args(
        tmp_path / "out", lr_scheduler_type=scheduler, lr_scheduler_kwargs=options,
        eval_strategy="no", max_steps=12, logging_steps=1, warmup_steps=3,
    )  # fmt: skip
    trainer = Trainer(
        model=tiny_gpt2(),
        args=args,
        train_dataset=Tokens(128, seed=1),
        callbacks=[ScalingLabCallback(project="p", run=scheduler, store=store)],
    )
    trainer.train()
    logged = [(h["step"] - 1, h["learning_rate"]) for h in trainer.state.log_history if "loss" in h]
    spec = ScheduleSpec.from_dict(json.loads(run_row(store, "p", scheduler)["schedule"]))
    assert spec.kind == kind and spec.warmup_steps == 3
    assert spec.lr([s for s, _ in logged]).tolist() == pytest.approx(
        [lr for _, lr in logged], rel=1e-12
    )
    stored = [(step, lr) for step, _, _, lr, _ in curve(store, "p", "train")]
    assert stored == logged  # no tokens: no seq_len, the Trainer counted none


def test_eval_sets_and_evaluations_after_training(store: Store, tmp_path: Path) -> None:
    callback = ScalingLabCallback(project="p", run="two-sets", store=store)
    trainer = Trainer(
        model=tiny_gpt2(),
        args=training_args(tmp_path / "out", max_steps=10),
        train_dataset=Tokens(128, seed=1),
        eval_dataset={"en": Tokens(8, seed=2), "de": Tokens(8, seed=3)},
        callbacks=[callback],
    )
    trainer.train()
    after = trainer.evaluate(eval_dataset=Tokens(8, seed=4))  # outside train(): still stored
    history = trainer.state.log_history
    for name in ("en", "de"):
        key = f"eval_{name}_loss"
        logged = [(h["step"] - 1, h[key]) for h in history if key in h]
        assert [s for s, _ in logged] == [4, 9]
        assert [(s, loss) for s, *_, loss in curve(store, "p", f"eval/{name}")] == logged
    assert [(s, loss) for s, *_, loss in curve(store, "p", "eval")] == [(9, after["eval_loss"])]
    assert run_row(store, "p", "two-sets")["status"] == "finished"  # kept by the late eval
    assert math.isfinite(after["eval_loss"])


def test_a_killed_training_keeps_its_points_up_to_the_last_flush(store: Store) -> None:
    child = children.start("hf_child", store, "block")

    def stored(history: list[dict]) -> list[tuple]:
        train = [("train", h["step"] - 1, h["loss"]) for h in history if "loss" in h]
        evals = [("eval", h["step"] - 1, h["eval_loss"]) for h in history if "eval_loss" in h]
        return evals + train

    history = children.kill_when_stored(child, store, "p", stored)
    assert [h["step"] for h in history if "loss" in h] == [2, 4, 6, 8, 10]
    assert children.points(store, "p") == stored(history)
    assert run_row(store, "p", "hf-block")["status"] == "running"  # nobody closed it


def test_a_training_that_raises_is_failed_when_the_process_exits(
    store: Store, tmp_path: Path
) -> None:
    class Broken(TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, args: object, state: object, control: object, **kw: object) -> None:
            if state.global_step == children.STOP_AT:  # type: ignore[attr-defined]
                raise RuntimeError("the training broke")

    callback = ScalingLabCallback(project="p", run="broken", store=store)
    trainer = Trainer(
        model=tiny_gpt2(),
        args=training_args(tmp_path / "out", eval_strategy="no"),
        train_dataset=Tokens(128, seed=1),
        callbacks=[callback, Broken()],
    )
    with pytest.raises(RuntimeError, match="the training broke"):
        trainer.train()
    # No hook runs after a raise: the run stays open (a notebook may retry) ...
    assert run_row(store, "p", "broken")["status"] == "running"
    transformers_integration._end_unfinished_training()  # ... until the process exits
    assert run_row(store, "p", "broken")["status"] == "failed"
    logged = [(h["step"] - 1, h["loss"]) for h in trainer.state.log_history if "loss" in h]
    assert [(s, loss) for s, *_, loss in curve(store, "p", "train")] == logged
    assert [s for s, _ in logged] == [1, 3, 5, 7, 9]


def test_an_interrupted_training_is_marked_interrupted(store: Store) -> None:
    child = children.start("hf_child", store, "sigint")  # a real exit, atexit hooks and all
    history = children.said(child)
    assert child.wait(timeout=120) != 0
    expected = [("eval", h["step"] - 1, h["eval_loss"]) for h in history if "eval_loss" in h]
    expected += [("train", h["step"] - 1, h["loss"]) for h in history if "loss" in h]
    assert children.points(store, "p") == expected and len(expected) == 7
    assert run_row(store, "p", "hf-sigint")["status"] == "interrupted"


def test_only_the_logged_names_are_read() -> None:
    from scalinglab.integrations.transformers import _loss_split

    assert [_loss_split(k) for k in ("eval_loss", "eval_en_loss", "test_loss")] == [
        "eval", "eval/en", "test",
    ]  # fmt: skip
    assert {_loss_split(k) for k in ("loss", "train_loss", "eval_runtime", "grad_norm")} == {None}
