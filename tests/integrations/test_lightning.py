"""ScalingLabLogger in real (tiny, CPU) Lightning fits: the store holds exactly what the
LightningModule logged, its hyperparameters, and how the fit ended."""

from __future__ import annotations

import importlib
import json
import signal

import pytest

pytest.importorskip("lightning")

from scalinglab.integrations.lightning_logger import lightning_points
from store import Store, queries
from store.ingest import ingest_inbox
from tests.integrations import children
from tests.integrations.tiny_lightning import (
    TOKENS_PER_STEP,
    loaders,
    tiny_module,
    trainer_options,
)

# Each package: its Trainer and LightningModule, and the ScalingLabLogger built on it.
PACKAGES = {
    "lightning": ("lightning", "scalinglab.integrations.lightning"),
    "pytorch_lightning": ("pytorch_lightning", "scalinglab.integrations.pytorch_lightning"),
}


def framework(name: str) -> tuple:
    """The package (Trainer, LightningModule), its ScalingLabLogger, LearningRateMonitor."""
    package, integration = PACKAGES[name]
    pl = pytest.importorskip(package)
    logger_class = importlib.import_module(integration).ScalingLabLogger
    callbacks = "lightning.pytorch" if package == "lightning" else package
    monitor = importlib.import_module(f"{callbacks}.callbacks").LearningRateMonitor
    return pl, logger_class, monitor


def curve(store: Store, project: str, split: str) -> list[tuple]:
    """(step, tokens, lr, loss) of one split, NaN as None."""
    frame = queries.points_frame(store, project=project, splits=[split]).sort_values("step")
    return [
        (int(r.step), *(None if v != v else float(v) for v in (r.tokens, r.lr, r.loss)))
        for r in frame.itertuples()
    ]


def run_row(store: Store, project: str, run: str) -> dict:
    ingest_inbox(store)
    frame = queries.list_runs(store, project=project)
    return frame[frame["run"] == run].iloc[0].to_dict()


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_a_fit_is_stored_as_the_module_logged_it(store: Store, package: str) -> None:
    pl, logger_class, monitor = framework(package)
    logger = logger_class(project="p", run=package, store=store, tokens_per_step=TOKENS_PER_STEP)
    trainer = pl.Trainer(
        **trainer_options(), logger=logger, callbacks=[monitor(logging_interval="step")]
    )
    module = tiny_module(pl.LightningModule, lr=0.01, seed=7)
    train, held = loaders()
    trainer.fit(module, train, held)

    # Lightning logs a step's loss (and LearningRateMonitor its LR, in another call) at
    # the step's index, every log_every_n_steps; the tokens are the module's own count.
    logged = [(step, float(tokens), lr, loss) for step, loss, lr, tokens in module.seen]
    assert curve(store, "p", "train") == [row for row in logged if row[0] % 2 == 1]
    assert len(curve(store, "p", "train")) == 10
    # A validation after k updates is logged at step k - 1 (the last update's index),
    # its loss the batch-size-weighted mean of the module's val losses.
    evals = curve(store, "p", "eval")
    assert [(s, tokens, lr) for s, tokens, lr, _ in evals] == [
        (k - 1, float(k * TOKENS_PER_STEP), None) for k, _ in module.validations
    ]
    assert [k for k, _ in module.validations] == [5, 10, 15, 20]
    assert [loss for *_, loss in evals] == pytest.approx(
        [mean for _, mean in module.validations], rel=1e-6
    )

    facts = run_row(store, "p", package)
    assert facts["status"] == "finished"
    assert facts["params"] == sum(p.numel() for p in module.parameters()) == 2112
    assert facts["params_non_embedding"] == 2112 - 64 * 16  # all but the nn.Embedding
    assert facts["seed"] == 7
    assert json.loads(facts["config"]) == {
        "lr": 0.01, "seed": 7, "batch_size": 8, "tokens_per_step": TOKENS_PER_STEP,
    }  # fmt: skip
    assert json.loads(facts["source"])["writer"] == f"scalinglab.integrations.{package}"

    # A validate() after fit() reopens the run, and its finalize closes it again.
    trainer.validate(module, held, verbose=False)
    assert len(curve(store, "p", "eval")) == 5
    assert run_row(store, "p", package)["status"] == "finished"


@pytest.mark.parametrize(
    ("error", "raised", "status"),
    [(RuntimeError, RuntimeError, "failed"), (KeyboardInterrupt, SystemExit, "interrupted")],
)
def test_a_fit_that_breaks_is_marked_so(
    store: Store, error: type[BaseException], raised: type[BaseException], status: str
) -> None:
    pl, logger_class, _ = framework("lightning")
    logger = logger_class(project="p", run="broken", store=store)
    module = tiny_module(pl.LightningModule)
    module.fail_at = children.STOP_AT
    module.fail_with = error
    trainer = pl.Trainer(
        **trainer_options(val_check_interval=None, limit_val_batches=0), logger=logger
    )
    handler = signal.getsignal(signal.SIGINT)  # Lightning ignores SIGINT after a Ctrl-C
    try:
        with pytest.raises(raised):  # a KeyboardInterrupt ends in Lightning's sys.exit(1)
            trainer.fit(module, loaders()[0])
    finally:
        signal.signal(signal.SIGINT, handler)
    assert run_row(store, "p", "broken")["status"] == status
    logged = [(step, loss) for step, loss, *_ in module.seen if step % 2 == 1]
    assert [(s, loss) for s, *_, loss in curve(store, "p", "train")] == logged
    assert [s for s, _ in logged] == [1, 3, 5, 7, 9]


def test_a_killed_fit_keeps_its_points_up_to_the_last_flush(store: Store) -> None:
    child = children.start("pl_child", store, "block")

    def stored(seen: list) -> list[tuple]:
        return [("train", step, loss) for step, loss, *_ in seen if step % 2 == 1]

    seen = children.kill_when_stored(child, store, "p", stored)
    assert [step for step, *_ in seen] == list(range(children.STOP_AT + 1))
    assert children.points(store, "p") == stored(seen)
    assert run_row(store, "p", "pl-block")["status"] == "running"  # nobody closed it


def test_metric_names_are_read_like_tracker_tags(store: Store) -> None:
    metrics = {
        "train_loss_step": 2.5, "train_loss_epoch": 2.7,  # per step kept, the mean not
        "val_loss_step": 2.9, "val_loss_epoch": 2.8,  # the eval set's mean kept
        "lr-AdamW": 1e-3, "epoch": 0, "test_loss": 3.0,
    }  # fmt: skip
    assert lightning_points(metrics) == [
        ({"train_loss": 2.5, "val_loss": 2.8, "lr": 1e-3}, None),
        ({"loss": 3.0}, "test"),
    ]
    _, logger_class, _ = framework("lightning")
    logger = logger_class(project="p", run="names", store=store)
    with pytest.warns(UserWarning, match="metric 'lr-AdamW/pg2' is not stored"):
        logger.log_metrics({"lr-AdamW/pg1": 1e-3, "lr-AdamW/pg2": 5e-4, "loss": 2.0}, step=0)
    logger.finalize("success")
    assert curve(store, "p", "train") == [(0, None, 1e-3, 2.0)]
