"""`init` / `Run`: a training loop's metrics as inbox points, flushed in the background.

Metric names are read as the importers read columns (`store.trackers.tags`): `loss`,
`train/loss` -> the train loss; `val_loss`, `eval/loss` -> the eval loss; `lr`,
`learning_rate`, `tokens`, `flops` -> those columns of the train curve. Other names are
not stored (a warning says so once per name).
"""

from __future__ import annotations

import atexit
import math
import numbers
import os
import secrets
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from store.errors import BadInputError
from store.inbox import InboxWriter
from store.trackers.tags import COLUMNS, detect_role

if TYPE_CHECKING:
    from store.core import Store

_LIVE: weakref.WeakSet[Run] = weakref.WeakSet()


def init(
    project: str = "default",
    run: str | None = None,
    *,
    params: int | float | None = None,
    tokens_per_step: int | float | None = None,
    store: Store | str | os.PathLike[str] | None = None,
    config: Mapping[str, Any] | None = None,
    flush_seconds: float = 2.0,
    **facts: Any,
) -> Run:
    """Start logging run `run` (a generated name when None) of `project`.

    `params` is the model's parameter count (N); `tokens_per_step` fills each point's
    tokens (step x tokens_per_step) when a log gives none; `config` (any JSON-able
    mapping) is kept with the run; `facts` are further run facts (`family`, `seed`,
    `schedule`, `params_non_embedding`, ...). `store` is a Store or its folder (default:
    `$SCALINGLAB_STORE`, else `~/.scalinglab`)."""
    name = run or new_run_name()
    return Run(
        project,
        name,
        params=params,
        tokens_per_step=tokens_per_step,
        store=store,
        config=config,
        flush_seconds=flush_seconds,
        facts=facts,
    )


def new_run_name() -> str:
    """The name `init` gives a run when it is given none: `run-<date>-<time>-<4 hex>`."""
    return time.strftime("run-%Y%m%d-%H%M%S-") + secrets.token_hex(2)


class Run:
    """One run being logged. Use `log`, then `finish` (or a `with` block)."""

    def __init__(
        self,
        project: str,
        name: str,
        *,
        params: int | float | None = None,
        tokens_per_step: int | float | None = None,
        store: Store | str | os.PathLike[str] | None = None,
        config: Mapping[str, Any] | None = None,
        flush_seconds: float = 2.0,
        facts: Mapping[str, Any] | None = None,
    ) -> None:
        if tokens_per_step is not None and not _positive(tokens_per_step):
            raise BadInputError(
                f"tokens_per_step must be a positive number, got {tokens_per_step!r}"
            )
        if flush_seconds <= 0:
            raise BadInputError(f"flush_seconds must be positive, got {flush_seconds!r}")
        settings = dict(config or {})
        if tokens_per_step is not None:
            settings.setdefault("tokens_per_step", tokens_per_step)
        run_facts: dict[str, Any] = {
            "source": {"writer": "scalinglab.init"},  # an integration names itself
            **(facts or {}),
        }
        if params is not None:
            run_facts["params"] = params
        if settings:
            run_facts["config"] = settings
        self.project = project
        self.name = name
        self.tokens_per_step = tokens_per_step
        self._writer = InboxWriter(
            store, project, name, facts=run_facts, flush_seconds=flush_seconds
        )
        self._lock = threading.Lock()
        self._next_step = 0
        self._ignored: set[str] = set()
        self._stop = threading.Event()
        self._finished = False
        self._flusher = threading.Thread(
            target=self._flush_every, args=(flush_seconds,), name="scalinglab-flush", daemon=True
        )
        self._flusher.start()
        _LIVE.add(self)

    @property
    def store(self) -> Store:
        return self._writer.store

    def log(
        self, metrics: Mapping[str, Any], step: int | None = None, *, split: str | None = None
    ) -> None:
        """Record `metrics` at `step` (the last step + 1 when None). With `split`, every
        loss in `metrics` belongs to that split (e.g. `split="eval/en"`)."""
        if self._finished:
            raise BadInputError(f"run {self.name!r} has finished: it logs nothing more")
        if not isinstance(metrics, Mapping):
            raise BadInputError(f"log takes a mapping of metric names to numbers, got {metrics!r}")
        losses: dict[str, float] = {}
        columns: dict[str, float] = {}
        for key, value in metrics.items():
            role = detect_role(str(key))
            if role is None:
                self._ignore(str(key))
                continue
            number = _number(key, value)
            if role in COLUMNS:
                columns[role] = number
            else:
                losses[split or role] = number
        with self._lock:
            at = self._next_step if step is None else step
            if "tokens" not in columns and self.tokens_per_step is not None:
                columns["tokens"] = float(at) * float(self.tokens_per_step)
            tokens, flops = columns.get("tokens"), columns.get("flops")
            rows = dict(losses)
            if columns.keys() - {"tokens", "flops"} or not rows:
                rows.setdefault("train", None)  # an LR-only step: a train row without a loss
            for row_split, loss in rows.items():
                lr = columns.get("lr") if row_split == "train" else None
                self._writer.log(at, split=row_split, loss=loss, lr=lr, tokens=tokens, flops=flops)
            self._next_step = int(at) + 1

    def set_facts(self, **facts: Any) -> None:
        """Record run facts now (`params`, `seed`, `config`...: as `init`'s `facts`)."""
        with self._lock:
            self._writer.set_facts(**facts)

    def flush(self) -> None:
        """Write what is buffered now (it is also written every `flush_seconds`)."""
        with self._lock:
            self._writer.flush()

    def finish(self, status: str = "finished") -> None:
        """Flush and mark the run `status` (finished, failed or interrupted). Safe twice."""
        if self._finished:
            return
        self._stop.set()
        self._flusher.join()
        with self._lock:
            self._writer.close(status=status)
            self._finished = True
        _LIVE.discard(self)

    def _flush_every(self, seconds: float) -> None:
        # Flushes even while the loop is busy elsewhere (a long eval, a stalled step).
        while not self._stop.wait(seconds):
            with self._lock:
                self._writer.flush()

    def _ignore(self, key: str) -> None:
        if key not in self._ignored:
            self._ignored.add(key)
            warnings.warn(
                f"scalinglab: metric {key!r} is not stored (a loss, lr, tokens or flops are)",
                stacklevel=3,
            )

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(_status_for(exc_type))


def _status_for(exc_type: type[BaseException] | None) -> str:
    if exc_type is None:
        return "finished"
    return "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed"


def _number(key: Any, value: Any) -> float:
    """A metric as a float: numbers, numpy scalars, one-element tensors (`float()`)."""
    if isinstance(value, bool) or value is None:
        raise BadInputError(f"metric {key!r} must be a number, got {value!r}")
    try:
        # `.item()` first: a tensor (even one that needs grad) or a numpy scalar.
        number = float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError, RuntimeError):
        raise BadInputError(f"metric {key!r} must be a number, got {value!r}") from None
    return number


def _positive(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


@atexit.register
def _finish_at_exit() -> None:
    """A script that forgot `finish()`: failed when it died of an exception, else finished."""
    died = getattr(sys, "last_type", None)
    for run in list(_LIVE):
        run.finish(_status_for(died))
