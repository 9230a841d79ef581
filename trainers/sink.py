"""Where metrics go: a tiny logger interface (`log(metrics, step)`, `close()`, and
optionally `flush()`, which the trainer calls before every checkpoint).

Metric names: `loss/<split>` (`loss/train`, `loss/eval`, `loss/eval/<family>`) and the
step's `lr`, `tokens` and `flops` (cumulative). `StoreSink` turns one `log` call into one
store point per loss split, each carrying the step's lr/tokens/flops, through the store's
`InboxWriter` (Parquet shards in the inbox, flushed at least every 2 seconds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

LOSS_PREFIX = "loss/"


class Logger(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def close(self, status: str = "finished") -> None: ...


def flush(sink: object) -> None:
    """Flush a sink that can (sinks passed in by callers may have no `flush`)."""
    method = getattr(sink, "flush", None)
    if callable(method):
        method()


class NullSink:
    """Drops everything (data-parallel ranks other than 0)."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self, status: str = "finished") -> None:
        pass


class ListSink:
    """Keeps every call in memory: `rows` is a list of (step, metrics)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []
        self.status: str | None = None

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.rows.append((step, dict(metrics)))

    def flush(self) -> None:
        pass

    def close(self, status: str = "finished") -> None:
        self.status = status

    def series(self, name: str) -> list[tuple[int, float]]:
        return [(s, m[name]) for s, m in self.rows if name in m]


class StoreSink:
    """Streams into a store's inbox; never opens the database.

    `families` maps a language family to its sampling ratio, so that per-family eval
    points (`loss/eval/<family>`) carry `family` and `sampling_ratio`.
    """

    def __init__(
        self,
        store: str | Path,
        project: str,
        run: str,
        facts: dict[str, Any] | None = None,
        families: dict[str, float] | None = None,
        flush_seconds: float = 2.0,
    ) -> None:
        from store.inbox import InboxWriter

        self.writer = InboxWriter(store, project, run, facts=facts, flush_seconds=flush_seconds)
        self.families = families or {}

    def log(self, metrics: dict[str, float], step: int) -> None:
        common = {k: metrics.get(k) for k in ("lr", "tokens", "flops")}
        losses = {k[len(LOSS_PREFIX) :]: v for k, v in metrics.items() if k.startswith(LOSS_PREFIX)}
        if not losses:  # an LR-only row keeps the lr column dense
            losses = {"train": None}
        for split, loss in losses.items():
            family = split.split("/", 1)[1] if split.startswith("eval/") else None
            ratio = self.families.get(family) if family else None
            self.writer.log(
                step,
                split=split,
                loss=None if loss is None else float(loss),
                family=family,
                sampling_ratio=ratio,
                **common,
            )

    def set_facts(self, **facts: Any) -> None:
        self.writer.set_facts(**facts)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, status: str = "finished") -> None:
        self.writer.close(status=status)
