"""What `scalinglab train` and `sweep` show while they work: runs done of total, step,
latest train and eval loss, throughput and time left.

On a terminal a rich display redraws in place; otherwise (a pipe, a log file, CI) a plain
line every `every_s` seconds, plus the first and last step of each run and one line per
run start and end, so a log shows steady progress without flooding. No torch here.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO


class Display(Protocol):
    def run_started(self, run: str, total_steps: int, note: str = "") -> None: ...

    def run_skipped(self, run: str) -> None: ...

    def step(self, step: int, metrics: dict[str, float]) -> None: ...

    def run_ended(self, run: str, status: str) -> None: ...

    def close(self) -> None: ...


@dataclass
class _Run:
    """Progress of one run, and the rates measured since its last report."""

    name: str
    total: int
    started: float
    first_step: int | None = None
    step: int = -1
    loss: float = math.nan
    eval_loss: float = math.nan
    tokens: float = 0.0
    mark_time: float = 0.0
    mark_tokens: float | None = None
    mark_step: int | None = None
    tokens_per_s: float = math.nan
    steps_per_s: float = math.nan

    def update(self, step: int, metrics: dict[str, float]) -> None:
        if self.first_step is None:
            self.first_step = step
        self.step = step
        self.loss = metrics.get("loss/train", self.loss)
        self.eval_loss = metrics.get("loss/eval", self.eval_loss)
        self.tokens = metrics.get("tokens", self.tokens)

    def measure(self, now: float) -> None:
        """Rates since the previous measurement (the first one: since the first step)."""
        if self.mark_step is not None and now > self.mark_time and self.step > self.mark_step:
            dt = now - self.mark_time
            self.steps_per_s = (self.step - self.mark_step) / dt
            self.tokens_per_s = (self.tokens - (self.mark_tokens or 0.0)) / dt
        self.mark_time, self.mark_tokens, self.mark_step = now, self.tokens, self.step

    def eta_s(self) -> float:
        if not self.steps_per_s or math.isnan(self.steps_per_s):
            return math.nan
        return (self.total - 1 - self.step) / self.steps_per_s


def _num(value: float, fmt: str = ".4f") -> str:
    return "-" if value is None or math.isnan(value) else format(value, fmt)


def _duration(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _rate(tokens_per_s: float) -> str:
    if math.isnan(tokens_per_s):
        return "- tok/s"
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if tokens_per_s >= scale:
            return f"{tokens_per_s / scale:.1f}{unit} tok/s"
    return f"{tokens_per_s:.0f} tok/s"


class _Tally:
    """Runs done of total, shared by both displays."""

    def __init__(self, label: str, total_runs: int) -> None:
        self.label, self.total, self.done = label, total_runs, 0
        self.runs: dict[str, _Run] = {}
        self.current: str | None = None

    def prefix(self) -> str:
        if self.total == 1:
            return self.label
        return f"{self.label} [{self.done}/{self.total} runs done]"


class PlainDisplay(_Tally):
    """Plain lines, for logs and pipes."""

    def __init__(
        self,
        label: str,
        total_runs: int,
        stream: TextIO,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(label, total_runs)
        self.stream, self.every_s, self.clock = stream, every_s, clock
        self._last_line = -math.inf

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def run_started(self, run: str, total_steps: int, note: str = "") -> None:
        self.runs[run] = _Run(run, total_steps, started=self.clock())
        self.current = run
        where = f", {note}" if note else ""
        self._print(f"{self.prefix()} {run}: started ({total_steps} steps{where})")

    def run_skipped(self, run: str) -> None:
        self.done += 1
        self._print(f"{self.prefix()} {run}: skipped (already finished)")

    def step(self, step: int, metrics: dict[str, float]) -> None:
        if self.current is None:
            return
        r, now = self.runs[self.current], self.clock()
        r.update(step, metrics)
        first, last = step == r.first_step, step == r.total - 1
        if not (first or last or now - self._last_line >= self.every_s):
            return
        r.measure(now)
        self._last_line = now
        self._print(
            f"{self.prefix()} {r.name}: step {step + 1}/{r.total}"
            f"  loss {_num(r.loss)}  eval {_num(r.eval_loss)}"
            f"  {_rate(r.tokens_per_s)}  eta {_duration(r.eta_s())}"
        )

    def run_ended(self, run: str, status: str) -> None:
        self.done += 1
        r = self.runs.get(run)
        detail = ""
        if r is not None:
            at = f" at step {r.step + 1}/{r.total}" if r.step >= 0 else ""
            wall = _duration(self.clock() - r.started)
            detail = f"{at} (loss {_num(r.loss)}, eval {_num(r.eval_loss)}) in {wall}"
        self._print(f"{self.prefix()} {run}: {status}{detail}")
        if run == self.current:
            self.current = None

    def close(self) -> None:
        pass


class RichDisplay(_Tally):
    """A live display on a terminal: one bar for the runs, one per run in progress."""

    def __init__(self, label: str, total_runs: int, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        super().__init__(label, total_runs)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=Console(file=stream),
            transient=False,
        )
        self.overall = None
        if total_runs > 1:
            self.overall = self.progress.add_task(
                label, total=total_runs, counts=f"0/{total_runs} runs", info=""
            )
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def run_started(self, run: str, total_steps: int, note: str = "") -> None:
        self.runs[run] = _Run(run, total_steps, started=time.monotonic())
        self.current = run
        self.tasks[run] = self.progress.add_task(
            run, total=total_steps, counts=f"step 0/{total_steps}", info=note
        )

    def run_skipped(self, run: str) -> None:
        self.done += 1
        self.progress.console.print(f"{run}: skipped (already finished)")
        self._count()

    def _count(self) -> None:
        if self.overall is not None:
            counts = f"{self.done}/{self.total} runs"
            self.progress.update(self.overall, completed=self.done, counts=counts)

    def step(self, step: int, metrics: dict[str, float]) -> None:
        if self.current is None:
            return
        r, now = self.runs[self.current], time.monotonic()
        r.update(step, metrics)
        if r.mark_step is None or now - r.mark_time >= 1.0:
            r.measure(now)
        info = f"loss {_num(r.loss)}  eval {_num(r.eval_loss)}  {_rate(r.tokens_per_s)}"
        self.progress.update(
            self.tasks[self.current],
            completed=step + 1,
            counts=f"step {step + 1}/{r.total}",
            info=info,
        )

    def run_ended(self, run: str, status: str) -> None:
        self.done += 1
        task = self.tasks.pop(run, None)
        if task is not None:
            r = self.runs[run]
            losses = f"loss {_num(r.loss)}  eval {_num(r.eval_loss)}"
            self.progress.update(task, info=f"{status}  {losses}")
            self.progress.stop_task(task)
        self._count()
        if run == self.current:
            self.current = None

    def close(self) -> None:
        self.progress.stop()


def make_display(
    label: str, total_runs: int, stream: TextIO | None = None, every_s: float = 5.0
) -> Display:
    """The rich display when `stream` (default stderr) is a terminal, else plain lines."""
    stream = stream if stream is not None else sys.stderr
    if stream.isatty():
        return RichDisplay(label, total_runs, stream)
    return PlainDisplay(label, total_runs, stream, every_s=every_s)


class NoDisplay:
    """`--no-progress`."""

    def run_started(self, run: str, total_steps: int, note: str = "") -> None:
        pass

    def run_skipped(self, run: str) -> None:
        pass

    def step(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def run_ended(self, run: str, status: str) -> None:
        pass

    def close(self) -> None:
        pass
