"""What a fit fits: one selection vocabulary for the CLI, jobs, the Python API and the UI.

A `Selection` says which rows of a canonical frame a law is fitted to:

- ``split``: the evaluation set. When the frame holds several candidate splits (several
  eval sets, or several non-train sets such as Gadre et al.'s 8 validation sets) and the
  law fits one, leaving it out is an error that lists them; never a silent pick. A name
  matches a split exactly, or as one ``/``-separated part of it (``c4_val`` matches
  ``training/eval_data/c4_val/shard-{0000000..0000010}.tar``), or as a unique substring.
- ``where``: filters (`fitting.where`, ANDed) over the canonical columns and run facts.
- ``exclude``: run names left out.
- ``reduce``: ``final`` (point laws: each run's final loss, the default), ``best`` (the
  final losses, then the lowest among runs that share N and D: the LR-sweep rule) or
  ``all`` (every point; the curve laws' only choice).
- ``checkpoints``: for a point law, every logged point of every run as an (N, D so far)
  point (``reduce`` then is ``all``).
- ``group_by``: a column; the engine fits one law per value (`fitting.constraints`).

`select` applies it and returns the rows with a `SelectionReport`: the rows used, the
rows dropped and why (every CLI, job and dashboard output shows it, and the saved fit
keeps it in ``FitResult.selection``). Rows are the frame's rows that carry a loss (an
LR-only row of a curve is not a data point).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fitting.errors import FitError
from fitting.laws.base import Law
from store.errors import BadInputError

REDUCTIONS = ("final", "all", "best")
# The keys a selection takes in a dict (a job's selection, the Python API's options).
SELECTION_KEYS = ("split", "where", "exclude", "reduce", "checkpoints", "group_by")


@dataclass(frozen=True)
class Selection:
    """Which rows to fit; see the module docstring. Every field is optional."""

    split: str | None = None
    where: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    reduce: str | None = None  # None: the law's own (final for points, all for curves)
    checkpoints: bool = False
    group_by: str | None = None

    def __post_init__(self) -> None:
        if self.reduce is not None and self.reduce not in REDUCTIONS:
            raise BadInputError(
                f"reduce must be one of {', '.join(REDUCTIONS)}, not {self.reduce!r}"
            )
        if self.checkpoints and self.reduce not in (None, "all"):
            raise BadInputError(
                f"--checkpoints fits every point of each run; it cannot be used with "
                f"--reduce {self.reduce}"
            )

    @classmethod
    def coerce(cls, value: Selection | Mapping[str, Any] | None) -> Selection:
        """A Selection from itself, None or a dict with `SELECTION_KEYS`; BadInputError
        for an unknown key or a value of the wrong kind."""
        if isinstance(value, Selection):
            return value
        raw = dict(value or {})
        unknown = sorted(set(raw) - set(SELECTION_KEYS))
        if unknown:
            raise BadInputError(
                f"unknown selection key(s) {', '.join(unknown)}; known: {', '.join(SELECTION_KEYS)}"
            )
        return cls(
            split=_text_or_none(raw.get("split"), "split"),
            where=_texts(raw.get("where"), "where"),
            exclude=_names(raw.get("exclude"), "exclude"),
            reduce=_text_or_none(raw.get("reduce"), "reduce"),
            checkpoints=_flag(raw.get("checkpoints", False), "checkpoints"),
            group_by=_text_or_none(raw.get("group_by"), "group_by"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from the defaults, JSON-safe."""
        out: dict[str, Any] = {}
        if self.split is not None:
            out["split"] = self.split
        if self.where:
            out["where"] = list(self.where)
        if self.exclude:
            out["exclude"] = list(self.exclude)
        if self.reduce is not None:
            out["reduce"] = self.reduce
        if self.checkpoints:
            out["checkpoints"] = True
        if self.group_by is not None:
            out["group_by"] = self.group_by
        return out

    @property
    def is_default(self) -> bool:
        return not self.to_dict()


def _text_or_none(value: Any, key: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise BadInputError(f"selection {key!r} must be a text, got {value!r}")
    return value.strip()


def _texts(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise BadInputError(f"selection {key!r} must be a text or a list of texts, got {value!r}")
    return tuple(v.strip() for v in value if v.strip())


def _names(value: Any, key: str) -> tuple[str, ...]:
    # Kept as given: a run name may hold commas (`N=1e8,D=2e9`); `_exclude` splits an
    # item on commas only when it is not a run's name itself.
    return _texts(value, key)


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise BadInputError(f"selection {key!r} must be true or false, got {value!r}")
    return value


@dataclass
class SelectionReport:
    """What a selection kept and what it left out (counts of rows that carry a loss)."""

    rows_in: int
    rows_used: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # why -> rows
    split: str | None = None
    runs_used: int = 0
    groups: dict[str, int] = field(default_factory=dict)  # group -> rows, with group_by
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report as text lines (the CLI prints them above the fit)."""
        head = f"data: {self.rows_used} of {self.rows_in} rows used"
        if self.runs_used:
            head += f" ({self.runs_used} run{'s' if self.runs_used != 1 else ''})"
        if self.split is not None:
            head += f", split {self.split!r}"
        out = [head]
        for why, count in self.dropped.items():
            out.append(f"  dropped {count}: {why}")
        if self.groups:
            listed = ", ".join(f"{g} ({n})" for g, n in self.groups.items())
            out.append(f"  groups: {listed}")
        out += [f"  note: {n}" for n in self.notes]
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rows_in": self.rows_in,
            "rows_used": self.rows_used,
            "dropped": dict(self.dropped),
        }
        if self.runs_used:
            out["runs_used"] = self.runs_used
        if self.split is not None:
            out["split"] = self.split
        if self.groups:
            out["groups"] = dict(self.groups)
        if self.notes:
            out["notes"] = list(self.notes)
        return out


@dataclass
class Selected:
    """The rows to fit, the law options the selection implies, and the report."""

    frame: pd.DataFrame
    law_options: dict[str, Any]
    report: SelectionReport
    selection: Selection


class _Ledger:
    """Rows with a loss, and the reason each dropped one was dropped (first reason wins)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.has_loss = _loss_mask(frame)
        self.reason = pd.Series(None, index=frame.index, dtype=object)

    def drop(self, index: pd.Index, why: str) -> None:
        index = index[self.has_loss.reindex(index, fill_value=False).to_numpy()]
        fresh = index[self.reason.reindex(index).isna().to_numpy()]
        self.reason.loc[fresh] = why

    def counts(self) -> dict[str, int]:
        dropped = self.reason[self.has_loss & self.reason.notna()]
        return {str(k): int(v) for k, v in dropped.value_counts(sort=False).items()}


def _loss_mask(frame: pd.DataFrame) -> pd.Series:
    if "loss" not in frame.columns:
        return pd.Series(False, index=frame.index)
    values = pd.to_numeric(frame["loss"], errors="coerce")
    return pd.Series(np.isfinite(values.to_numpy(dtype=float, na_value=np.nan)), frame.index)


def select(
    law: Law,
    frame: pd.DataFrame,
    selection: Selection | Mapping[str, Any] | None = None,
    **law_options: Any,
) -> Selected:
    """Apply ``selection`` for ``law``: the rows it fits, with sizes filled in, and the
    report; BadInputError for a selection that names what is not there, FitError when no
    row is left."""
    from fitting.data import fill_sizes

    sel = Selection.coerce(selection)
    if frame.empty:
        raise FitError(f"law {law.name!r}: no data to fit")
    if "loss" not in frame.columns:
        raise FitError(f"law {law.name!r} needs a 'loss' column", column="loss")
    frame = frame.copy()
    if not frame.index.is_unique:
        frame = frame.reset_index(drop=True)
    ledger = _Ledger(frame)
    report = SelectionReport(rows_in=int(ledger.has_loss.sum()))
    opts = dict(law_options)
    frame = _exclude(frame, sel, ledger)
    frame = fill_sizes(frame)
    frame, split = _choose_split(law, frame, sel, opts, ledger)
    report.split = split
    if law.kind == "curves":
        frame = _curves(law, frame, sel, opts, ledger, split)
    else:
        frame = _points(law, frame, sel, opts, ledger)
    frame = _filter(law, frame, sel, ledger)
    frame = _group_rows(frame, sel, ledger)
    used = _loss_mask(frame)
    report.rows_used = int(used.sum())
    report.dropped = ledger.counts()
    if "run" in frame.columns:
        report.runs_used = int(frame.loc[used, "run"].nunique())
    if sel.group_by is not None:
        counts = frame.loc[used, sel.group_by].astype(str).value_counts(sort=False)
        report.groups = {str(k): int(v) for k, v in sorted(counts.items())}
    if report.rows_used == 0:
        why = "; ".join(f"{n} {w}" for w, n in report.dropped.items()) or "none had a loss"
        raise FitError(
            f"law {law.name!r}: the selection leaves no row to fit "
            f"(of {report.rows_in} rows: {why})"
        )
    out = frame.reset_index(drop=True)
    excluded = frame.attrs.get("excluded_runs")
    if excluded:
        out.attrs["excluded_runs"] = dict(excluded)
    return Selected(out, opts, report, sel)


def _exclude(frame: pd.DataFrame, sel: Selection, ledger: _Ledger) -> pd.DataFrame:
    if not sel.exclude:
        return frame
    if "run" not in frame.columns:
        raise BadInputError("--exclude names runs, but the data has no run column")
    runs = frame["run"].astype(str)
    known = set(runs)
    names = [name for item in sel.exclude for name in _run_names(item, known)]
    missing = [r for r in names if r not in known]
    if missing:
        close = [r for r in sorted(known) if missing[0].lower() in r.lower()][:5]
        hint = f"; runs like it: {', '.join(close)}" if close else ""
        raise BadInputError(f"--exclude: no run {missing[0]!r} in the data{hint}")
    gone = runs.isin(names)
    ledger.drop(frame.index[gone], "--exclude")
    return frame[~gone]


def _run_names(item: str, known: set[str]) -> list[str]:
    """The runs an --exclude item names: itself when it is a run, else its comma-separated
    parts, a run whose name holds commas (``N=1e8,D=2e9``) taken whole."""
    if item in known:
        return [item]
    out, current = [], ""
    for piece in item.split(","):
        current = f"{current},{piece}" if current else piece.strip()
        if current in known:
            out.append(current)
            current = ""
    if current:
        out.append(current)  # not a run: `_exclude` names it in its error
    return out


def _splits_with_loss(frame: pd.DataFrame) -> list[str]:
    if "split" not in frame.columns:
        return []
    have = _loss_mask(frame)
    return list(dict.fromkeys(frame.loc[have, "split"].dropna().astype(str)))


def match_split(name: str, splits: Sequence[str]) -> str:
    """The split ``name`` means (exact, a ``/``-part, or a unique substring); a
    BadInputError that lists the splits otherwise."""
    if name in splits:
        return name
    parts = [s for s in splits if name in s.split("/")]
    if len(parts) == 1:
        return parts[0]
    inside = parts or [s for s in splits if name.lower() in s.lower()]
    if len(inside) == 1:
        return inside[0]
    which = inside or list(splits)
    how = "matches several splits" if inside else "is not a split of the data"
    raise BadInputError(f"--split {name!r} {how}; the splits: {_listing(which)}")


def _listing(splits: Sequence[str]) -> str:
    return "; ".join(f"'{s}'" for s in splits)


def _candidates(law: Law, frame: pd.DataFrame, splits: list[str]) -> list[str]:
    """The splits a law could fit when none is named: for point laws the eval sets (any
    non-train set when none is called eval); a law whose points a column tells apart
    (multilingual: family) takes them all."""
    if law.kind == "points" and any(k in frame.columns for k in law.point_keys):
        keyed = frame[[k for k in law.point_keys if k in frame.columns]].notna().any(axis=1)
        if keyed.any():
            return []
    if law.kind == "curves":
        return splits
    named = [s for s in splits if s != "train"]
    evals = [s for s in named if s.startswith("eval")]
    return evals or named


def _choose_split(
    law: Law,
    frame: pd.DataFrame,
    sel: Selection,
    opts: dict[str, Any],
    ledger: _Ledger,
) -> tuple[pd.DataFrame, str | None]:
    splits = _splits_with_loss(frame)
    wanted = sel.split
    if wanted is None and law.kind == "curves" and opts.get("split") is not None:
        wanted = str(opts["split"])
    if wanted is None:
        candidates = _candidates(law, frame, splits)
        if len(candidates) > 1:
            short = short_names(candidates)
            listed = "".join(
                f"\n  {short[c]}" + (f"  ({c})" if short[c] != c else "") for c in candidates
            )
            raise BadInputError(
                f"the data hold {len(candidates)} splits and law {law.name!r} fits one: "
                f"choose it with --split (e.g. --split {short[candidates[1]]}); the splits:"
                f"{listed}"
            )
        return frame, (splits[0] if len(splits) == 1 and splits[0] != "train" else None)
    if not splits:
        raise BadInputError(f"--split {wanted!r}: the data have no split column")
    split = match_split(wanted, splits)
    if law.kind == "curves":
        # Curves keep every row (the LR rows carry the schedule); the law fits the split.
        if "split" in law.law_options:
            opts["split"] = split
        other = _loss_mask(frame) & (frame["split"].astype(str) != split)
        ledger.drop(frame.index[other], f"not split {split!r}")
        frame = frame.copy()
        frame.loc[other, "loss"] = np.nan
        return frame, split
    other = frame["split"].astype(str) != split
    ledger.drop(frame.index[other], f"not split {split!r}")
    return frame[~other], split


def short_names(splits: Sequence[str]) -> dict[str, str]:
    """For each split, a short name `match_split` takes for it: its first ``/``-part that
    no other split has (skipping file names), else the split itself."""
    counts: dict[str, int] = {}
    for split in splits:
        for part in set(split.split("/")):
            counts[part] = counts.get(part, 0) + 1
    out = {}
    for split in splits:
        parts = [p for p in split.split("/") if p and counts[p] == 1]
        plain = [p for p in parts if "." not in p] or parts
        out[split] = plain[0] if plain else split
    return out


def _curves(
    law: Law,
    frame: pd.DataFrame,
    sel: Selection,
    opts: dict[str, Any],
    ledger: _Ledger,
    split: str | None,
) -> pd.DataFrame:
    if sel.reduce in ("final", "best") or sel.checkpoints:
        what = "--checkpoints" if sel.checkpoints else f"--reduce {sel.reduce}"
        raise BadInputError(
            f"law {law.name!r} fits whole loss curves; {what} applies to laws of final losses"
        )
    return frame


def _points(
    law: Law, frame: pd.DataFrame, sel: Selection, opts: dict[str, Any], ledger: _Ledger
) -> pd.DataFrame:
    from fitting.data import _final_rows

    has = _loss_mask(frame)
    if opts.get("x") == "step" and "step" in law.x_columns:
        keep = has.copy()
        if "split" in frame.columns and (frame["split"] == "train").any() and sel.split is None:
            keep &= frame["split"] == "train"
            ledger.drop(frame.index[has & ~keep], "not the train curve (x=step)")
        return frame[keep]
    if sel.checkpoints or sel.reduce == "all" or "run" not in frame.columns:
        frame = _eval_preferred(frame, law, ledger) if "run" in frame.columns else frame
        if sel.checkpoints:
            frame = _with_tokens_so_far(frame, ledger)
        return frame[_loss_mask(frame)]
    keys = ["run", *(key for key in law.point_keys if key in frame.columns)]
    for key in keys[1:]:  # a run's points told apart by a column (family): it must be set
        unset = frame[key].isna()
        ledger.drop(frame.index[unset], f"no {key}")
        frame = frame[~unset]
    picked, excluded = _final_rows(frame, keys)
    runs = frame["run"].astype(str)
    for name in excluded:
        ledger.drop(
            frame.index[runs == name.split(" / ")[0]],
            "a diverged run (its last logged loss is NaN or infinite)",
        )
    _warn_excluded(excluded)
    if picked.empty:
        diverged = f" (left out: {', '.join(excluded)})" if excluded else ""
        raise FitError(f"law {law.name!r}: no run has a loss value to fit{diverged}")
    ledger.drop(frame.index.difference(picked.index), "not a run's final loss")
    if sel.reduce == "best":
        picked = _best_of_sweeps(picked, ledger)
    if excluded:
        picked.attrs["excluded_runs"] = excluded
    return picked


def _warn_excluded(excluded: dict[str, str]) -> None:
    import warnings

    from fitting.errors import DataWarning

    for name, why in excluded.items():
        warnings.warn(f"run {name!r} left out: {why}", DataWarning, stacklevel=4)


def _eval_preferred(frame: pd.DataFrame, law: Law, ledger: _Ledger) -> pd.DataFrame:
    """Each run's eval rows when it has any (as for its final loss), else its train rows."""
    if "split" not in frame.columns:
        return frame
    is_eval = frame["split"].astype(str).str.startswith("eval")
    has_eval = is_eval.groupby(frame["run"].astype(str)).transform("any")
    keep = is_eval | ~has_eval
    ledger.drop(frame.index[~keep], "train rows of a run with eval rows")
    return frame[keep]


def _with_tokens_so_far(frame: pd.DataFrame, ledger: _Ledger) -> pd.DataFrame:
    """Checkpoints need D so far: rows whose tokens are unknown or zero are dropped."""
    if "tokens" not in frame.columns:
        raise BadInputError(
            "--checkpoints fits (N, D so far) points, but the data have no tokens column"
        )
    tokens = pd.to_numeric(frame["tokens"], errors="coerce")
    bad = ~(tokens > 0)
    ledger.drop(frame.index[bad], "no tokens seen yet at that checkpoint")
    return frame[~bad]


def _best_of_sweeps(picked: pd.DataFrame, ledger: _Ledger) -> pd.DataFrame:
    """Among runs with the same N and D, the lowest final loss (an LR sweep's best)."""
    missing = [c for c in ("params", "tokens") if c not in picked.columns]
    if missing:
        raise BadInputError(
            f"--reduce best compares runs of the same N and D, but the data have no "
            f"{' or '.join(missing)}"
        )
    key = pd.DataFrame(
        {
            c: np.round(np.log(pd.to_numeric(picked[c], errors="coerce")), 6)
            for c in ("params", "tokens")
        },
        index=picked.index,
    )
    loss = pd.to_numeric(picked["loss"], errors="coerce")
    best = loss.groupby([key["params"], key["tokens"]], dropna=False).transform("min")
    keep = loss == best
    # Equal best losses keep one run: the first in the data.
    keep &= ~(key[keep].duplicated()).reindex(picked.index, fill_value=False)
    ledger.drop(picked.index[~keep], "not the lowest final loss of runs with the same N and D")
    return picked[keep]


def _filter(law: Law, frame: pd.DataFrame, sel: Selection, ledger: _Ledger) -> pd.DataFrame:
    from fitting.where import evaluate

    for text in sel.where:
        passes = evaluate(text, frame)
        fails = ~passes
        ledger.drop(frame.index[fails.to_numpy()], f"--where {text!r} is false")
        if law.kind == "curves":
            # The rows stay (their LR belongs to the curve); they are just not fit points.
            frame = frame.copy()
            frame.loc[fails, "loss"] = np.nan
        else:
            frame = frame[passes]
    return frame


def _group_rows(frame: pd.DataFrame, sel: Selection, ledger: _Ledger) -> pd.DataFrame:
    if sel.group_by is None:
        return frame
    if sel.group_by not in frame.columns:
        known = ", ".join(sorted(map(str, frame.columns)))
        raise BadInputError(f"--group-by: no column {sel.group_by!r} (known: {known})")
    unset = frame[sel.group_by].isna() | (frame[sel.group_by].astype(str).str.strip() == "")
    ledger.drop(frame.index[unset], f"no {sel.group_by}")
    return frame[~unset]


def describe(selected: Selected, source: Mapping[str, Any]) -> dict[str, Any]:
    """What a saved fit records of its data: the source (file or project and runs), the
    selection and the report."""
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in source.items() if v is not None}
    out.update(selected.selection.to_dict())
    out["report"] = selected.report.to_dict()
    return out


# Keys of `fitting.fit`'s options that select rows (``group_by`` stays a law option too).
_TRIGGERS = ("where", "exclude", "reduce", "checkpoints")


def apply_options(
    law: Law, data: pd.DataFrame, options: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any], Selected | None]:
    """The engine's selection hook: when `fitting.fit` is given selection keys
    (``where``, ``exclude``, ``reduce``, ``checkpoints``; ``split`` for a point law), the
    rows they select, the remaining options, and the `Selected`; else the data as given."""
    point_split = law.kind == "points" and options.get("split") is not None
    if not point_split and not any(options.get(k) not in (None, False, (), []) for k in _TRIGGERS):
        return data, options, None
    rest = {k: v for k, v in options.items() if k not in SELECTION_KEYS}
    raw = {k: options[k] for k in SELECTION_KEYS if k in options}
    law_side = {k: v for k, v in rest.items() if k not in _engine_keys()}
    picked = select(law, data, raw, **law_side)
    rest.update({k: v for k, v in picked.law_options.items() if k not in rest or k == "split"})
    if options.get("group_by") is not None:
        rest["group_by"] = options["group_by"]
    return picked.frame, rest, picked


def _engine_keys() -> frozenset[str]:
    from fitting.result import ENGINE_KEYS

    return ENGINE_KEYS
