"""`ScalingLabCallback`: a Hugging Face `Trainer`'s curve and run facts, live, in a store.

    from scalinglab.integrations.transformers import ScalingLabCallback
    trainer = Trainer(model, args, ..., callbacks=[ScalingLabCallback(project="gpt2-sweep")])

- `on_train_begin` opens the run (`scalinglab.init`): the parameter counts from the model
  (`params`, `params_non_embedding`: `scalinglab.integrations.counts`), the seed, the LR
  schedule as a `fitting.schedules.ScheduleSpec` when the scheduler is one it can spell
  (linear, cosine, cosine_with_min_lr, constant, constant_with_warmup), and the
  `TrainingArguments` in `config` under the trainers' names (`lr`, `batch_size`: sequences
  per optimizer step over all ranks, `micro_batch`, `steps`, ...). Tokens per step are
  `batch_size x seq_len` when `seq_len` is given (or `tokens_per_step` itself).
- `on_log` writes each log at step `state.global_step - 1`, the index (from 0) of the
  update just done: the store's step, as the trainers and Lightning write it and
  `fitting.schedules` reads it. After `global_step` updates HF logs the mean loss since
  its last log and the LR of the last update, so the recorded schedule's `lr(step)` is
  the point's LR and its tokens are (step + 1) x tokens per step (an evaluation before
  any update is at step 0, with 0 tokens). `loss` and `learning_rate` are the train
  curve, `eval_loss` split `eval`, `eval_<name>_loss` (a dict of eval sets) split
  `eval/<name>`, `<prefix>_loss` of another `metric_key_prefix` split `<prefix>`. The
  tokens are `num_input_tokens_seen` when the Trainer counts them
  (`include_num_input_tokens_seen`), else from tokens per step; the train curve's FLOPs
  are the Trainer's own `state.total_flos` (6 N D, N without the embeddings). The
  run-average `train_loss` of the closing summary is not a point.
- `on_train_end` marks the run `finished`. A `train()` that raises never reaches it: the
  run is then marked `interrupted` (a KeyboardInterrupt) or `failed` when the process
  exits; a killed process keeps every point up to the last flush (every 2 s).
- Evaluations after `train()` (`trainer.evaluate()`) still land in the run, its status
  kept. Only the main process (`state.is_world_process_zero`) writes.
"""

from __future__ import annotations

import atexit
import os
import sys
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import scalinglab
from store.trackers.optional import MissingExtraError

try:
    import transformers
    from transformers import TrainerCallback
except ImportError as err:  # the extra is not installed
    raise MissingExtraError(
        "ScalingLabCallback needs the 'transformers' package: "
        "pip install 'scalinglab[transformers]'"
    ) from err

if TYPE_CHECKING:
    from store.core import Store

_TRAINING: weakref.WeakSet[ScalingLabCallback] = weakref.WeakSet()
_SCHEDULES = ("linear", "cosine", "cosine_with_min_lr", "constant", "constant_with_warmup")


class ScalingLabCallback(TrainerCallback):  # type: ignore[misc]
    """Log a `Trainer`'s run into `store` (a Store or its folder; default
    `$SCALINGLAB_STORE`, else `~/.scalinglab`) as run `run` of `project` (default: the
    arguments' `run_name`, else a generated name). `params` and `tokens_per_step` replace
    what is counted or derived; `config` is merged into the recorded config; `facts` are
    further run facts (`family`, `entropy`, ...)."""

    def __init__(
        self,
        project: str = "default",
        run: str | None = None,
        *,
        store: Store | str | os.PathLike[str] | None = None,
        params: int | None = None,
        tokens_per_step: int | float | None = None,
        seq_len: int | None = None,
        config: Mapping[str, Any] | None = None,
        flush_seconds: float = 2.0,
        **facts: Any,
    ) -> None:
        self.project = project
        self.run_name = run
        self.store = store
        self.params = params
        self.tokens_per_step = tokens_per_step
        self.seq_len = seq_len
        self.config = dict(config or {})
        self.flush_seconds = flush_seconds
        self.facts = facts
        self.run: scalinglab.Run | None = None
        self.status: str | None = None  # how the last train() ended
        self._training = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        facts = self._facts(args, state, kwargs.get("model"))
        if self.run is None:  # the usual case; else an evaluate() before train() opened it
            self.run = self._open(**facts)
        else:
            self.run.set_facts(status="running", **facts)
        self._training = True
        _TRAINING.add(self)

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        points = _points(logs, state, self._tokens_per_step(args))
        if not points:
            return
        step = max(state.global_step - 1, 0)  # the store's step: the last update's index
        if self.run is not None:
            for metrics, split in points:
                self.run.log(metrics, step=step, split=split)
            return
        # After train() (or with no train() at all): the points join the run, whose
        # status stays what train() left (`running` when it never ran).
        status = self.status or "running"
        run = self._open(status=status)
        for metrics, split in points:
            run.log(metrics, step=step, split=split)
        if self.status is None:
            self.run = run
        else:
            run.finish(status)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.finish("finished")

    def finish(self, status: str = "finished") -> None:
        """Close the run as `status` (finished, failed or interrupted); `on_train_end` and
        the process's exit call this. Nothing happens when no run is open."""
        if self.run is not None:
            self.run.finish(status)
            self.status = status
        self.run = None
        self._training = False
        _TRAINING.discard(self)

    def _open(self, **facts: Any) -> scalinglab.Run:
        # Tokens are filled here, not by `init`'s tokens_per_step: a run reopened for a
        # late evaluation must not overwrite the recorded config.
        run = scalinglab.init(
            project=self.project,
            run=self.run_name,
            store=self.store,
            flush_seconds=self.flush_seconds,
            source={"writer": __name__, "transformers": transformers.__version__},
            **facts,
        )
        self.run_name = run.name  # one name for the whole run, late evaluations included
        return run

    def _tokens_per_step(self, args: Any) -> float | None:
        if self.tokens_per_step is not None:
            return self.tokens_per_step
        if self.seq_len is None:
            return None
        return _batch_size(args) * self.seq_len

    def _facts(self, args: Any, state: Any, model: Any) -> dict[str, Any]:
        """Run facts from the model and the `TrainingArguments`, as the trainers name them."""
        if self.run_name is None and getattr(args, "run_name", None):
            self.run_name = args.run_name
        facts: dict[str, Any] = {}
        if model is not None:
            from scalinglab.integrations.counts import param_counts

            facts.update(param_counts(model))
        if self.params is not None:
            facts["params"] = self.params
        steps = int(state.max_steps)
        warmup = int(args.get_warmup_steps(steps))
        scheduler = _scheduler_name(args)
        config: dict[str, Any] = {
            "trainer": "transformers.Trainer",
            "lr": args.learning_rate,
            "batch_size": _batch_size(args),
            "micro_batch": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "world_size": args.world_size,
            "seq_len": self.seq_len,
            "steps": steps,
            "warmup_steps": warmup,
            "lr_scheduler_type": scheduler,
            "lr_scheduler_kwargs": dict(args.lr_scheduler_kwargs or {}),
            "optim": str(getattr(args.optim, "value", args.optim)),
            "weight_decay": args.weight_decay,
            "betas": [args.adam_beta1, args.adam_beta2],
            "grad_clip": args.max_grad_norm,
            "seed": args.seed,
            "tokens_per_step": self._tokens_per_step(args),
        }
        model_config = getattr(model, "config", None)
        if hasattr(model_config, "to_dict"):
            config["model"] = model_config.to_dict()
        facts["config"] = {**config, **self.config}
        facts["seed"] = args.seed
        facts["schedule"] = _schedule(scheduler, args, steps, warmup)
        return _known({**facts, **self.facts})


def _batch_size(args: Any) -> int:
    """Sequences per optimizer step over all ranks (`train_batch_size` counts DataParallel)."""
    return int(args.train_batch_size * args.gradient_accumulation_steps * args.world_size)


def _scheduler_name(args: Any) -> str:
    return str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type))


def _schedule(name: str, args: Any, steps: int, warmup: int) -> dict[str, Any] | None:
    """The Trainer's LR schedule as a ScheduleSpec dict, or None when it is not one of
    the kinds ScheduleSpec spells exactly (HF's schedulers share its step convention)."""
    from fitting.schedules import ScheduleSpec
    from store.errors import BadInputError

    options = dict(args.lr_scheduler_kwargs or {})
    peak = float(args.learning_rate)
    if name not in _SCHEDULES or steps < 1 or peak <= 0:
        return None
    if name.startswith("cosine") and options.get("num_cycles", 0.5) != 0.5:
        return None  # several cosine cycles: no ScheduleSpec kind
    final = 0.0
    if name == "cosine_with_min_lr":
        final = float(options.get("min_lr", peak * float(options.get("min_lr_rate", 0.0))))
    kind = {"cosine_with_min_lr": "cosine", "constant_with_warmup": "constant"}.get(name, name)
    warmup = 0 if name == "constant" else warmup  # HF's `constant` has no warmup
    try:
        spec = ScheduleSpec(kind, peak, steps, warmup_steps=warmup, final_lr=final)
    except BadInputError:
        return None
    return spec.to_dict()


def _points(
    logs: Mapping[str, Any], state: Any, tokens_per_step: float | None
) -> list[tuple[dict[str, Any], str | None]]:
    """(metrics for `Run.log`, split) pairs of one `on_log` call."""
    tokens = logs.get("num_input_tokens_seen")
    if not isinstance(tokens, int | float) or isinstance(tokens, bool) or tokens < 0:
        tokens = None if tokens_per_step is None else state.global_step * tokens_per_step
    shared = {} if tokens is None else {"tokens": float(tokens)}
    points: list[tuple[dict[str, Any], str | None]] = []
    if "loss" in logs or "learning_rate" in logs:
        train = dict(shared)
        for key, name in (("loss", "loss"), ("learning_rate", "lr")):
            if key in logs:
                train[name] = logs[key]
        if state.total_flos:
            train["flops"] = float(state.total_flos)
        points.append((train, None))
    for key, value in logs.items():
        split = _loss_split(key)
        if split is not None:
            points.append(({**shared, "loss": value}, split))
    return points


def _loss_split(key: str) -> str | None:
    """`eval_loss` -> eval, `eval_en_loss` -> eval/en, `test_loss` -> test; None for the
    train loss, the closing `train_loss` average and anything not a loss."""
    if not key.endswith("_loss"):
        return None
    prefix = key.removesuffix("_loss")
    if prefix in ("", "train"):
        return None
    if prefix == "eval":
        return "eval"
    if prefix.startswith("eval_"):
        return "eval/" + prefix.removeprefix("eval_")
    return prefix


def _known(facts: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in facts.items() if value is not None}


@atexit.register  # registered after scalinglab.logger's, so it runs before it
def _end_unfinished_training() -> None:
    """A `train()` that raised never called `on_train_end`: its run did not finish."""
    died = getattr(sys, "last_type", None)
    interrupted = died is not None and issubclass(died, KeyboardInterrupt)
    for callback in list(_TRAINING):
        if callback._training:
            callback.finish("interrupted" if interrupted else "failed")
