"""What `ScalingLabLogger` does, for both Lightning packages (`lightning`, `pytorch_lightning`).

Imports neither: `scalinglab.integrations.lightning` and `.pytorch_lightning` join this
mixin to their package's `Logger` base class.

- `log_hyperparams(params)` -> the run's `config` (merged over calls); a whole-number
  `seed` and a text `family` among them are also run facts.
- `log_graph(model)` (Lightning calls it at the start of every fit) -> `params` and
  `params_non_embedding` counted from the module, unless `params` was given.
- `log_metrics(metrics, step)` -> points at `step` (Lightning's: the index of the last
  optimizer update, from 0; tokens are (step + 1) x `tokens_per_step`), names read as `store.trackers.tags`
  reads tags (`loss`, `train_loss`, `val_loss`, `lr`, `learning_rate`, ...), and:
  `LearningRateMonitor`'s `lr-<Optimizer>` (its first param group) is the LR; a train
  metric logged with `on_step` and `on_epoch` is kept per step (`train_loss_step`), an
  eval one per epoch (`val_loss_epoch`); `test_*` losses go to split `test` (not `eval`,
  where a `trainer.test()` after `fit()` would replace the last validation's point);
  `epoch` is dropped quietly, other metrics with a warning (once). Metrics of one step
  logged in several calls are merged into one point.
- `finalize(status)` -> the run's status: `success` -> finished, `failed` -> failed (or
  interrupted when Lightning is handling a KeyboardInterrupt), anything else ->
  interrupted. Metrics logged after it (a `trainer.validate()` after `fit()`) reopen the
  run until the next `finalize`.
"""

from __future__ import annotations

import os
import re
import sys
from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import scalinglab
from scalinglab.logger import new_run_name
from store.trackers.tags import COLUMNS, detect_role

if TYPE_CHECKING:
    from store.core import Store

_LR_MONITOR = re.compile(r"^lr-[A-Za-z0-9_.]+(/pg1)?$")  # lr-AdamW, lr-AdamW/pg1
_QUIET = ("epoch", "step")
_STATUSES = {"success": "finished", "finished": "finished", "failed": "failed"}


class ScalingLabLoggerMixin:
    """A Lightning logger writing run `run` of `project` into `store` (a Store or its
    folder; default `$SCALINGLAB_STORE`, else `~/.scalinglab`). `params` replaces the
    count from the module; `tokens_per_step` fills each point's tokens; `config` starts
    the recorded config; `facts` are further run facts (`family`, `schedule`, ...)."""

    framework = "lightning"

    def __init__(
        self,
        project: str = "default",
        run: str | None = None,
        *,
        store: Store | str | os.PathLike[str] | None = None,
        params: int | None = None,
        tokens_per_step: int | float | None = None,
        config: Mapping[str, Any] | None = None,
        flush_seconds: float = 2.0,
        **facts: Any,
    ) -> None:
        super().__init__()
        self.project = project
        self.run_name = run or new_run_name()
        self.store = store
        self.params = params
        self.tokens_per_step = tokens_per_step
        self.config: dict[str, Any] = dict(config or {})
        self.flush_seconds = flush_seconds
        self.facts = facts
        self.status: str | None = None  # the last finalize's
        self._run: scalinglab.Run | None = None
        self._step: int | None = None  # the last logged step, and its metrics so far
        self._values: dict[str, Any] = {}

    # -- Logger's interface ----------------------------------------------------------
    @property
    def name(self) -> str:
        return self.project

    @property
    def version(self) -> str:
        return self.run_name

    @property
    def experiment(self) -> scalinglab.Run | None:
        """The open `scalinglab.Run` (opened on first use); None off the main process."""
        return self._open() if self._is_main() else None

    def log_hyperparams(self, params: Mapping[str, Any] | Namespace, *args: Any, **kw: Any) -> None:
        if not self._is_main():
            return
        values = vars(params) if isinstance(params, Namespace) else dict(params)
        self.config.update(values)
        facts: dict[str, Any] = {"config": self._config()}
        seed, family = values.get("seed"), values.get("family")
        if isinstance(seed, int) and not isinstance(seed, bool):
            facts["seed"] = seed
        if isinstance(family, str) and family:
            facts["family"] = family
        self._open().set_facts(**facts)

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        if not self._is_main() or self.params is not None:
            return
        from scalinglab.integrations.counts import param_counts

        self._open().set_facts(**param_counts(model))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if not self._is_main():
            return
        run = self._open()
        for values, split in lightning_points(metrics):
            if self.tokens_per_step is not None and step is not None:
                # Lightning's step is the index of the last update: step + 1 updates done.
                values.setdefault("tokens", (step + 1) * float(self.tokens_per_step))
            if split is None and step is not None:
                # One step's metrics may come in several calls (LearningRateMonitor logs
                # the LR before the step's loss): each call re-logs the step merged.
                if step == self._step:
                    values = {**self._values, **values}
                self._step, self._values = step, values
            run.log(values, step=step, split=split)

    def save(self) -> None:
        """Lightning calls this after every log: the background flush writes instead."""

    def finalize(self, status: str) -> None:
        if not self._is_main() or self._run is None:
            return
        final = _STATUSES.get(status, "interrupted")
        if final == "failed" and isinstance(sys.exc_info()[1], KeyboardInterrupt):
            final = "interrupted"  # Lightning finalizes inside its KeyboardInterrupt handler
        self._run.finish(final)
        self._run, self._step, self._values = None, None, {}
        self.status = final

    # -- helpers ---------------------------------------------------------------------
    def _is_main(self) -> bool:
        """Rank 0 (a subclass reads its package's `rank_zero_only.rank`)."""
        return True

    def _open(self) -> scalinglab.Run:
        if self._run is None:
            facts = dict(self.facts)
            if self.params is not None:
                facts["params"] = self.params
            self._run = scalinglab.init(
                project=self.project,
                run=self.run_name,
                store=self.store,
                config=self._config(),
                flush_seconds=self.flush_seconds,
                source={"writer": type(self).__module__, self.framework: self._version()},
                **facts,
            )
        return self._run

    def _config(self) -> dict[str, Any]:
        config = dict(self.config)
        if self.tokens_per_step is not None:
            config["tokens_per_step"] = self.tokens_per_step
        return config

    def _version(self) -> str:
        module = sys.modules.get(self.framework)
        return str(getattr(module, "__version__", "unknown"))


def lightning_points(metrics: Mapping[str, Any]) -> list[tuple[dict[str, Any], str | None]]:
    """(metrics for `Run.log`, split) pairs of one `log_metrics` call (see the module)."""
    regular: dict[str, Any] = {}
    tests: list[tuple[dict[str, Any], str | None]] = []
    for name, value in metrics.items():
        key = _metric_name(str(name))
        if key is None:
            continue
        if detect_role(key) == "eval" and key.lower().startswith("test"):
            tests.append(({"loss": value}, "test"))
        else:
            regular[key] = value
    return ([(regular, None)] if regular else []) + tests


def _metric_name(name: str) -> str | None:
    """The name to read `name` as, or None to drop it quietly."""
    if name in _QUIET:
        return None
    if _LR_MONITOR.match(name):
        return "lr"
    for suffix, keep in (("_step", "train"), ("_epoch", "eval")):
        base = name.removesuffix(suffix)
        role = detect_role(base) if base != name else None
        if role is None:
            continue
        if role in COLUMNS:
            return base if suffix == "_step" else None
        return base if role == keep else None
    return name
