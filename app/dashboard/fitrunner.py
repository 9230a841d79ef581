"""The Fit page's background fit: one thread per fit, owned by the session, that the page
polls (progress, the quick first result, the full result) and can cancel.

No Streamlit here: the thread never touches the page; it writes its state under a lock
and the page reads a `Snapshot`. A new fit cancels the one before it (it never queues).

Streamlit says nothing when a tab closes, so a fit watches its page instead: every
`snapshot()` (the page polls about once a second while a fit runs) counts as a look, and a
fit no page has looked at for `ABANDON_S` cancels itself (state "cancelled", `abandoned`),
so a closed tab's fit does not hold the cores for its whole bootstrap.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from fitting.progress import Cancelled, Monitor, watching
from store.errors import ScalinglabError

_IDS = itertools.count(1)
ABANDON_S = 300.0  # long enough to visit another page and come back
STAGE_TEXT = {"starts": "starts done", "bootstrap": "bootstrap resamples"}


@dataclass(frozen=True)
class Snapshot:
    """What the page shows of a fit at one moment."""

    id: int
    state: str  # running | done | failed | cancelled
    stage: str
    done: int
    total: int
    version: int  # grows when a (first or full) result arrives or the fit ends
    result: Any = None  # the latest result: the quick one, then the full one
    data: pd.DataFrame | None = None
    final: bool = False  # `result` is the full one
    error: str | None = None
    elapsed_s: float = 0.0
    first_s: float | None = None  # when the first result came, from the start
    abandoned: bool = False  # cancelled because no page looked at it for ABANDON_S

    @property
    def running(self) -> bool:
        return self.state == "running"

    def progress_text(self) -> str:
        what = STAGE_TEXT.get(self.stage, self.stage)
        if not self.total:
            return f"{what}…" if what else "starting…"
        return f"{what}: {self.done} of {self.total}"

    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


@dataclass
class FitRun:
    """One fit in a background thread; `snapshot()` is safe from any thread."""

    project: str
    law: str
    selection: dict[str, Any]
    options: dict[str, Any]
    data: pd.DataFrame
    store: Any
    id: int = field(default_factory=lambda: next(_IDS))
    cancel_event: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _state: Snapshot | None = None
    abandon_after_s: float = ABANDON_S
    _t0: float = field(default_factory=time.perf_counter)
    _seen: float = field(default_factory=time.monotonic)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._state = Snapshot(self.id, "running", "", 0, 0, 0)

    def start(self) -> FitRun:
        self._thread = threading.Thread(target=self._work, name=f"fit-{self.id}", daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.cancel_event.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def snapshot(self) -> Snapshot:
        """The fit as it stands; a look from the page (see `ABANDON_S`)."""
        self._seen = time.monotonic()
        return self._peek()

    def is_set(self) -> bool:
        """The fit's cancel flag (`fitting.progress.CancelFlag`): cancelled, or abandoned
        by its page."""
        if self.cancel_event.is_set():
            return True
        if time.monotonic() - self._seen <= self.abandon_after_s:
            return False
        self._update(abandoned=True)
        self.cancel_event.set()
        return True

    def _peek(self) -> Snapshot:
        with self._lock:
            assert self._state is not None
            return replace(self._state, elapsed_s=time.perf_counter() - self._t0)

    def _update(self, **changes: Any) -> None:
        with self._lock:
            assert self._state is not None
            if "result" in changes or "state" in changes:
                changes["version"] = self._state.version + 1
            self._state = replace(self._state, **changes)

    def _progress(self, stage: str, done: int, total: int) -> None:
        self._update(stage=stage, done=done, total=total)

    def _first(self, result: Any, data: pd.DataFrame) -> None:
        self._update(result=result, data=data, first_s=time.perf_counter() - self._t0)

    def _work(self) -> None:
        from fitting.jobs import fit_selection

        monitor = Monitor(self._progress, self, self._first)
        try:
            with watching(monitor):
                result, frame = fit_selection(
                    self.store, self.project, self.law, self.selection, self.options, self.data
                )
        except Cancelled:
            self._update(state="cancelled")
        except ScalinglabError as err:
            self._update(state="failed", error=str(err))
        except Exception as err:  # the page shows it; the thread must not die silently
            self._update(state="failed", error=f"{type(err).__name__}: {err}")
        else:
            first = self._peek().first_s
            self._update(
                state="done",
                result=result,
                data=frame,
                final=True,
                first_s=first if first is not None else time.perf_counter() - self._t0,
            )


def start(
    store: Any,
    project: str,
    law: str,
    selection: dict[str, Any],
    options: dict[str, Any],
    data: pd.DataFrame,
    previous: FitRun | None = None,
    *,
    abandon_after_s: float = ABANDON_S,
) -> FitRun:
    """Cancel ``previous`` (if still running) and start a new fit at once."""
    if previous is not None:
        previous.cancel()
    run = FitRun(project, law, selection, options, data, store, abandon_after_s=abandon_after_s)
    return run.start()
