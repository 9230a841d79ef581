"""From a tracker's scalar series to the canonical frames the CSV importer also makes.

A reader hands over, per run, the series it found: tag -> (steps, values, order). Roles
come from `store.trackers.tags`; a step logged twice keeps its last value (a resumed run
re-logs steps); NaN and infinities (a diverged run) become "no value", as the inbox does.
The result is a `store.importers.ParsedFile`, written by `store.trackers.write`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from store.errors import BadInputError
from store.importers.aliases import RUN_FACTS
from store.importers.parse import ParsedFile
from store.trackers.tags import COLUMNS, choose_roles

_LN2 = math.log(2.0)


@dataclass
class Series:
    """One tag's points in the order they were written."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    float32: bool = False  # values are float32 (TensorBoard's `simple_value`)
    _exact: int = 0  # values before this index are already shown as written

    def add(self, step: int, value: float) -> None:
        self.steps.append(step)
        self.values.append(value)

    def settle(self) -> None:
        """float32 values as their shortest decimals (0.001, not 0.0010000000474974513)."""
        if self.float32 and self._exact < len(self.values):
            raw = np.asarray(self.values[self._exact :], dtype=np.float32)
            # numpy prints a float32 as its shortest round-tripping decimal.
            self.values[self._exact :] = raw.astype(str).astype(np.float64).tolist()
        self._exact = len(self.values)


@dataclass
class TrackerRun:
    """One run as a reader found it: its name, series, facts and where it came from."""

    name: str
    where: str  # the file or folder, for messages
    series: dict[str, Series] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, tag: str, step: int, value: float, float32: bool = False) -> None:
        series = self.series.get(tag)
        if series is None:
            series = self.series[tag] = Series(float32=float32)
        series.add(step, value)

    def settle(self) -> None:
        for series in self.series.values():
            series.settle()


def to_parsed(
    runs: list[TrackerRun],
    *,
    path: Path,
    format: str,
    sha256: str,
    tags: dict[str, str | None] | None = None,
    bits: bool = False,
) -> ParsedFile:
    """Validate the runs' series and build the canonical frames (nothing written)."""
    import pyarrow as pa

    if not runs:
        raise BadInputError("no runs found", file=str(path))
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise BadInputError(f"two runs are named {twice!r}", file=str(path))
    columns: dict[str, list[Any]] = {n: [] for n in ("run", "split", "step", *COLUMNS, "loss")}
    notes: list[str] = []
    facts: list[tuple[str, str, Any]] = []
    for run in runs:
        roles, more = choose_roles(
            {t: len(s.steps) for t, s in run.series.items()}, tags, run.where
        )
        notes += [f"run {run.name!r}: {note}" for note in more]
        for split, block in _run_points(run, roles, bits).items():
            n = len(block["step"])
            columns["run"].append(np.full(n, run.name, dtype=object))
            columns["split"].append(np.full(n, split, dtype=object))
            for name in ("step", *COLUMNS, "loss"):
                columns[name].append(block[name])
        facts += [(run.name, name, value) for name, value in _checked_facts(run).items()]
    arrays = {name: np.concatenate(parts) if parts else [] for name, parts in columns.items()}
    n = len(arrays["step"])
    points = pa.table(
        {
            "run": pa.array(arrays["run"], pa.string()),
            "split": pa.array(arrays["split"], pa.string()),
            "step": pa.array(np.asarray(arrays["step"], np.int64), pa.int64()),
            **{c: _nullable(arrays[c]) for c in (*COLUMNS, "loss")},
            "family": pa.nulls(n, pa.string()),
            "sampling_ratio": pa.nulls(n, pa.float64()),
        }
    ).select(["run", "split", "step", "tokens", "flops", "lr", "loss", "family", "sampling_ratio"])
    # Facts go through `store.runfacts` (checked there); the runs' own columns stay null.
    runs_table = pa.table(
        {"run": pa.array(names, pa.string())}
        | {fact: pa.nulls(len(names), _fact_type(fact)) for fact in RUN_FACTS}
    )
    series = pa.table(
        {
            "run": pa.array([r for r, _ in _series_keys(points)], pa.string()),
            "split": pa.array([s for _, s in _series_keys(points)], pa.string()),
        }
    )
    series = series.append_column("family", pa.nulls(series.num_rows, pa.string()))
    series = series.append_column("sampling_ratio", pa.nulls(series.num_rows, pa.float64()))
    if bits:
        notes.append("loss converted from bits to nats (x ln 2)")
    return ParsedFile(
        path=path,
        format=format,
        points_table=points,
        runs_table=runs_table,
        series_table=series,
        mapping={},
        warnings=notes,
        sha256=sha256,
        bits=bits,
        facts=facts,
    )


def _checked_facts(run: TrackerRun) -> dict[str, Any]:
    from store.runfacts import split_facts

    try:
        canonical, other = split_facts(run.facts)
    except BadInputError as err:
        raise BadInputError(f"run {run.name!r}: {err.message}", file=run.where) from None
    return {**canonical, **other}


def _fact_type(fact: str) -> Any:
    import pyarrow as pa

    if fact in ("family",):
        return pa.string()
    return pa.float64() if fact == "sampling_ratio" else pa.int64()


def _nullable(values: Any) -> Any:
    import pyarrow as pa

    data = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(data)
    return pa.array(data, pa.float64(), mask=None if finite.all() else ~finite)


def _series_keys(points: Any) -> list[tuple[str, str]]:
    runs = points.column("run").to_pylist()
    splits = points.column("split").to_pylist()
    seen: dict[tuple[str, str], None] = {}
    for key in zip(runs, splits, strict=True):
        seen.setdefault(key, None)
    return list(seen)


def _last_per_step(series: Series) -> tuple[np.ndarray, np.ndarray]:
    """Steps ascending, each with the value it was last logged with."""
    steps = np.asarray(series.steps, dtype=np.int64)
    values = np.asarray(series.values, dtype=np.float64)
    # Reversed, `unique` finds each step's last occurrence first.
    unique, index = np.unique(steps[::-1], return_index=True)
    return unique, values[::-1][index]


def _run_points(run: TrackerRun, roles: dict[str, str], bits: bool) -> dict[str, dict[str, Any]]:
    """{split: {step, lr, tokens, flops, loss}} with the LR/tokens/FLOPs on the train curve."""
    by_role = {role: _last_per_step(run.series[tag]) for tag, role in roles.items()}
    for tag, role in roles.items():
        steps, values = by_role[role]
        if len(steps) and steps[0] < 0:
            raise BadInputError(f"tag {tag!r}: negative step {int(steps[0])}", file=run.where)
        if role not in COLUMNS and (values < 0).any():
            at = int(np.argmax(values < 0))
            raise BadInputError(
                f"tag {tag!r}, step {int(steps[at])}: negative loss {float(values[at])!r}",
                file=run.where,
            )
    out: dict[str, dict[str, Any]] = {}
    splits = [role for role in by_role if role not in COLUMNS]
    if "train" not in splits and any(role in COLUMNS for role in by_role):
        splits.append("train")  # an LR curve with only an eval loss: LR-only train rows
    for split in splits:
        parts = [by_role[split][0]] if split in by_role else []
        if split == "train":
            parts += [by_role[c][0] for c in COLUMNS if c in by_role]
        steps = np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)
        block: dict[str, Any] = {"step": steps}
        for name in (*COLUMNS, "loss"):
            role = split if name == "loss" else name
            column = np.full(len(steps), np.nan)
            if role in by_role and (name == "loss" or split == "train"):
                known, values = by_role[role]
                column[np.searchsorted(steps, known)] = values
            block[name] = column * _LN2 if name == "loss" and bits else column
        out[split] = block
    return out
