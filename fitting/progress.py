"""Progress reports and cancellation for long fits (the dashboard's background fits).

A `Monitor` travels with one fit: ``progress(stage, done, total)`` is called as the
multi-start and the bootstrap advance (stages ``"starts"`` and ``"bootstrap"``), ``cancel``
is a `threading.Event` checked between resamples and between optimiser iterations (a set
event raises `Cancelled` there; bootstrap workers in other processes get a copy of it), and ``first_result(result, data)`` receives the point
estimate with quick (sandwich) intervals before a slow method (bootstrap, profile) runs.

`fitting.fit(..., progress=, cancel=, first_result=)` takes them directly; a caller that
fits through another function (`fitting.jobs.fit_selection`) wraps the call in
``with watching(Monitor(...)):`` and the engine picks the monitor up (per thread).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from store.errors import ScalinglabError

if TYPE_CHECKING:
    import pandas as pd

    from fitting.result import FitResult


class CancelFlag(Protocol):
    """A `threading.Event`, or a `multiprocessing` one in a bootstrap worker."""

    def is_set(self) -> bool: ...


Progress = Callable[[str, int, int], None]  # (stage, done, total)
FirstResult = Callable[["FitResult", "pd.DataFrame"], None]  # (quick result, fitted rows)
# With a progress callback the bootstrap reports at least this many times (its chunks are
# cut that small), so a bar moves and a cancel lands between two chunks.
PROGRESS_STEPS = 20
WATCHED_CHUNK = 50  # and at most this many resamples per report (a long bootstrap)


class Cancelled(ScalinglabError):
    """The fit was cancelled (its monitor's cancel event was set)."""


@dataclass(frozen=True)
class Monitor:
    """What a running fit reports to and listens to; every field optional."""

    progress: Progress | None = None
    cancel: CancelFlag | None = None
    first_result: FirstResult | None = None

    @property
    def active(self) -> bool:
        return self.progress is not None or self.cancel is not None

    def check(self) -> None:
        """Raise `Cancelled` when the cancel event is set."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("the fit was cancelled")

    def report(self, stage: str, done: int, total: int) -> None:
        """Check for a cancel, then tell the callback how far ``stage`` has got."""
        self.check()
        if self.progress is not None:
            self.progress(stage, int(done), int(total))


QUIET = Monitor()
_CURRENT: ContextVar[Monitor] = ContextVar("fitting_monitor", default=QUIET)


def current() -> Monitor:
    """The monitor of the fit running in this thread (`QUIET` outside `watching`)."""
    return _CURRENT.get()


@contextmanager
def watching(monitor: Monitor) -> Iterator[Monitor]:
    """Fits started inside the block (in this thread) report to ``monitor``."""
    token = _CURRENT.set(monitor)
    try:
        yield monitor
    finally:
        _CURRENT.reset(token)


def resolve(
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
    first_result: FirstResult | None = None,
) -> Monitor:
    """The monitor of a fit: the arguments given, else the one of `watching`."""
    if progress is None and cancel is None and first_result is None:
        return current()
    return Monitor(progress, cancel, first_result)


def chunk_size(n: int, largest: int, monitor: Monitor) -> int:
    """Resamples per batch: ``largest`` (memory) or, when someone watches, small enough
    for `PROGRESS_STEPS` reports and at most `WATCHED_CHUNK`."""
    if not monitor.active:
        return max(1, largest)
    return max(1, min(largest, WATCHED_CHUNK, -(-n // PROGRESS_STEPS)))
