"""Following a folder of tracker runs while they are written: `scalinglab watch PATH`.

Each `Watcher.poll()` looks for new event files and W&B run files, reads the records
written since the last poll and streams the new points through the inbox
(`store.inbox.InboxWriter`, one per run): the database lock is never held. A run joins
when its first loss appears; a W&B run is finished (or failed) when its exit record
arrives, a TensorBoard run when its files have not grown for `idle_finish` seconds (event
files have no end marker). A TensorBoard run's newest step is held back until a later
step or the end shows it complete (its scalars arrive one by one). `poll` does one bounded
pass; the CLI loops over it, and tests call it directly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from store.errors import BadInputError, ScalinglabError
from store.inbox import InboxWriter
from store.trackers import tensorboard_events, wandb_offline
from store.trackers.series import Series, TrackerRun, _run_points
from store.trackers.tags import COLUMNS, choose_roles

if TYPE_CHECKING:
    from store.core import Store

log = logging.getLogger("scalinglab.watch")


@dataclass
class PollReport:
    joined: list[str] = field(default_factory=list)
    finished: list[tuple[str, str]] = field(default_factory=list)  # (run, status)
    points: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class _Followed:
    name: str
    kind: str  # "tensorboard" or "wandb"
    buffer: TrackerRun
    readers: dict[Path, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    writer: InboxWriter | None = None
    last_change: float = 0.0
    status: str = "running"
    facts: dict[str, Any] = field(default_factory=dict)


class Watcher:
    """Streams the runs under `path` into `project` of `store`, one `poll()` at a time."""

    def __init__(
        self,
        store: Store,
        path: Path,
        project: str,
        *,
        tags: dict[str, str | None] | None = None,
        idle_finish: float | None = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not path.exists():
            raise BadInputError("no such file or folder", file=str(path))
        self.store, self.path, self.project = store, path, project
        self.tags, self.idle_finish, self.clock = tags, idle_finish, clock
        self.runs: dict[Path, _Followed] = {}  # by run folder / run file
        self._broken: set[Path] = set()

    def poll(self) -> PollReport:
        report = PollReport()
        now = self.clock()
        self._discover(now)
        for key, run in self.runs.items():
            if key in self._broken:
                continue
            try:
                changed = self._read(run)
                if changed:
                    run.last_change = now
                    if run.status != "running" and run.kind == "tensorboard":
                        run.status = "running"  # it grew again after it was called finished
                ending = self._ending(run, now)
                report.points += self._emit(run, report, final=ending is not None)
                if ending is not None and run.writer is not None:
                    run.writer.close(status=ending)
                    run.writer, run.status = None, ending
                    report.finished.append((run.name, ending))
                elif run.writer is not None:
                    run.writer.flush()
            except ScalinglabError as err:
                self._broken.add(key)
                report.problems.append(str(err))
                log.warning("stopped following %s: %s", run.name, err)
        return report

    def close(self) -> None:
        """Flush every run's points; their status stays as it is (the jobs may go on)."""
        for run in self.runs.values():
            if run.writer is not None:
                run.writer.flush()

    def _discover(self, now: float) -> None:
        root = self.path if self.path.is_dir() else self.path.parent
        for file in tensorboard_events.event_files(self.path):
            run = self.runs.get(file.parent)
            if run is None:
                name = tensorboard_events.run_name(file.parent, root)
                run = self.runs[file.parent] = _Followed(
                    self._unique(name), "tensorboard", TrackerRun(name, str(file.parent))
                )
                run.last_change = now
            if file not in run.readers:
                run.readers[file] = tensorboard_events.EventReader(file)
        for file in wandb_offline.run_files(self.path):
            if file not in self.runs:
                reader = wandb_offline.RunFileReader(file)
                run = _Followed("", "wandb", TrackerRun("", str(file.parent)), {file: reader})
                run.last_change = now
                self.runs[file] = run

    def _unique(self, name: str, run_id: str = "") -> str:
        taken = {run.name for run in self.runs.values()}
        return name if name not in taken else f"{name}-{run_id or len(taken)}"

    def _read(self, run: _Followed) -> bool:
        before = {tag: len(s.steps) for tag, s in run.buffer.series.items()}
        if run.kind == "tensorboard":
            for reader in run.readers.values():
                reader.read_into(run.buffer)
        else:
            (reader,) = run.readers.values()
            state = reader.read()
            # Named once the run record is read (its display name), or by its id when
            # history comes first.
            if not run.name and (state.has_run or state.rows):
                run.name = self._unique(state.name or state.run_id, state.run_id)
                run.buffer.name = run.name
                facts = wandb_offline.config_facts(state.config)
                run.facts = {k: v for k, v in facts.items() if k in ("params", "config")}
            rows, state.rows = state.rows, []
            wandb_offline.run_from_rows(run.name, rows, {}, where=run.buffer.where, run=run.buffer)
        changed = False
        for tag, series in run.buffer.series.items():
            new = len(series.steps) - before.get(tag, 0)
            if new:
                run.counts[tag] = run.counts.get(tag, 0) + new
                changed = True
        return changed

    def _ending(self, run: _Followed, now: float) -> str | None:
        """The status the run ends with on this poll, or None while it goes on."""
        if run.status != "running":
            return None
        if run.kind == "wandb":
            (reader,) = run.readers.values()
            code = reader.state.exit_code
            return None if code is None else ("finished" if code == 0 else "failed")
        idle = now - run.last_change
        if self.idle_finish is not None and idle >= self.idle_finish and run.counts:
            return "finished"
        return None

    def _roles(self, run: _Followed) -> dict[str, str] | None:
        tags = self.tags
        if tags is not None:  # a chosen tag may not have been written yet
            tags = {t: r for t, r in tags.items() if t in run.counts}
            if not tags:
                return None
        try:
            roles, _ = choose_roles(run.counts, tags, run.buffer.where)
        except BadInputError:
            return None  # no loss yet: wait for one
        return roles

    def _emit(self, run: _Followed, report: PollReport, *, final: bool) -> int:
        """Send the complete new steps to the run's writer; keep the rest buffered."""
        roles = self._roles(run)
        if roles is None or not run.name:
            return 0
        steps = [s for series in run.buffer.series.values() for s in series.steps]
        if not steps:
            return 0
        hold = run.kind == "tensorboard" and not final
        frontier = max(steps) if hold else None
        ready, kept = _split_at(run.buffer, frontier)
        run.buffer.series = kept
        if not any(tag in ready.series for tag in roles):
            return 0
        ready.series = {t: s for t, s in ready.series.items() if t in roles}
        present = {t: r for t, r in roles.items() if t in ready.series}
        blocks = _run_points(ready, present, bits=False)
        if run.writer is None:
            run.writer = InboxWriter(
                self.store,
                self.project,
                run.name,
                facts={**run.facts, "source": {"watch": str(run.buffer.where)}},
            )
            run.status = "running"
            report.joined.append(run.name)
        count = 0
        for split, block in blocks.items():
            columns = {"split": split, "step": block["step"]}
            columns["loss"] = block["loss"]
            if split == "train":
                columns.update({name: block[name] for name in COLUMNS})
            run.writer.log_many(columns)
            count += len(block["step"])
        return count


def _split_at(run: TrackerRun, frontier: int | None) -> tuple[TrackerRun, dict[str, Series]]:
    """(the entries below `frontier` as a run, the series of the entries at or above)."""
    ready = TrackerRun(run.name, run.where)
    kept: dict[str, Series] = {}
    for tag, series in run.series.items():
        steps = np.asarray(series.steps, dtype=np.int64)
        below = np.ones(len(steps), bool) if frontier is None else steps < frontier
        if below.any():
            values = np.asarray(series.values, dtype=np.float64)
            ready.series[tag] = Series(steps[below].tolist(), values[below].tolist())
        if not below.all():
            rest = Series(
                steps[~below].tolist(),
                np.asarray(series.values, dtype=np.float64)[~below].tolist(),
                float32=series.float32,
            )
            rest.settle()  # its values are exact already
            kept[tag] = rest
    return ready, kept
