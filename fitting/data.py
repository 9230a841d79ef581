"""Fit frames: load them from the store or a file, and pick the rows a law fits.

Point laws (``kind == "points"``: one row per model) fit each run's final loss: its last
eval loss, or its last train loss when the run has no eval. Multilingual runs keep one
final row per (run, family). Table imports (one point per run) pass through unchanged.
Curve laws get every row of each run, LR-only rows included. ``power_law`` with
``x="step"`` fits the points of the curves themselves.

A run whose last logged loss is not a number has diverged: its final loss is unknown, and
an earlier loss would stand in for a model that never reached it, so the run is left out
with a `DataWarning` naming it (and `frame.attrs["excluded_runs"]`, which the fit copies
into its checks). The store writes a logged NaN as "no value", like a row that logs only
the LR, so a missing final loss counts as divergence unless the run also has loss-less
rows between its losses (the LR logged more often than the loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fitting.errors import FitError
from fitting.laws.base import Law

if TYPE_CHECKING:
    from store.core import Store


def frame_from_parsed(parsed: Any) -> pd.DataFrame:
    """Canonical long frame from an importer's ParsedFile: points joined with run facts
    (a point's own family / sampling_ratio win over its run's)."""
    points, runs = parsed.points.copy(), parsed.runs
    facts = [c for c in runs.columns if c != "run"]
    merged = points.merge(runs, on="run", how="left", suffixes=("", "_run"))
    for col in facts:
        if f"{col}_run" in merged.columns:
            merged[col] = merged[col].where(merged[col].notna(), merged[f"{col}_run"])
            merged = merged.drop(columns=f"{col}_run")
    extra = getattr(parsed, "facts", None) or []
    if extra:
        table: dict[str, dict[str, Any]] = {}
        for run, name, value in extra:
            table.setdefault(str(run), {})[str(name)] = value
        merged = join_facts(merged, pd.DataFrame([{"run": r, **v} for r, v in table.items()]))
    return merged


def join_facts(frame: pd.DataFrame, facts: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each run's facts (`store.runfacts`: one row per run) as columns. A
    fact the frame already has fills only its missing values; ``tokens`` and ``flops``
    (a run's training tokens and FLOPs) fill the run's last step, its final point."""
    if facts.empty or "run" not in frame.columns or len(facts.columns) < 2:
        return frame
    out = frame.copy()
    runs = out["run"].astype(str)
    by_run = facts.assign(run=facts["run"].astype(str)).drop_duplicates("run").set_index("run")
    last = pd.Series(True, index=out.index)
    if "step" in out.columns:
        steps = pd.to_numeric(out["step"], errors="coerce")
        last = steps == steps.groupby(runs).transform("max")
    for name in by_run.columns:
        values = runs.map(by_run[name])
        if name in ("tokens", "flops"):
            if name in out.columns:
                current = pd.to_numeric(out[name], errors="coerce")
            else:
                current = pd.Series(np.nan, index=out.index)
            filled = pd.to_numeric(values, errors="coerce").where(last)
            out[name] = current.fillna(filled)
        elif name in out.columns:
            out[name] = out[name].where(out[name].notna(), values)
        else:
            out[name] = values
    return out


def read_file(path: str | Path, **importer_options: Any) -> pd.DataFrame:
    """Any file the importer accepts (long CSV, W&B, TensorBoard, tables) as a fit frame."""
    from store.importers import parse_file

    return frame_from_parsed(parse_file(Path(path), **importer_options))


def load_project(store: Store, project: str, runs: Sequence[str] | None = None) -> pd.DataFrame:
    """A project's points (optionally some runs) from the store, inbox included."""
    from store.queries import points_frame

    frame = points_frame(store, project=project, runs=list(runs) if runs else None)
    if frame.empty:
        which = f"runs {', '.join(runs)} of " if runs else ""
        raise FitError(f"no points found for {which}project {project!r}")
    if runs:
        missing = sorted(set(runs) - set(frame["run"].astype(str)))
        if missing:
            raise FitError(f"project {project!r} has no run {missing[0]!r}")
    from store.runfacts import facts_frame

    return join_facts(frame, facts_frame(store, project, list(runs) if runs else None))


def fill_sizes(frame: pd.DataFrame) -> pd.DataFrame:
    """Carry tokens / flops forward within each run and derive D = C / 6N or C = 6ND
    where only one of them was logged."""
    out = frame.copy()
    if {"run", "step"} <= set(out.columns):
        out = out.sort_values(["run", "step"], kind="stable")
        for col in ("tokens", "flops"):
            if col in out.columns:
                # Same step in another split first (evals often log no tokens), then the
                # run's latest earlier value.
                same_step = out.groupby(["run", "step"], sort=False)[col].transform("max")
                out[col] = out[col].fillna(same_step)
                out[col] = out.groupby("run", sort=False)[col].ffill()
    if "params" in out.columns:
        n = pd.to_numeric(out["params"], errors="coerce")
        if "flops" in out.columns:
            c = pd.to_numeric(out["flops"], errors="coerce")
            d = out["tokens"] if "tokens" in out.columns else pd.Series(np.nan, out.index)
            out["tokens"] = pd.to_numeric(d, errors="coerce").fillna(c / (6.0 * n))
        if "tokens" in out.columns:
            d = pd.to_numeric(out["tokens"], errors="coerce")
            c = out["flops"] if "flops" in out.columns else pd.Series(np.nan, out.index)
            out["flops"] = pd.to_numeric(c, errors="coerce").fillna(6.0 * n * d)
    return out


def _final_rows(frame: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """The last row with a loss per key group, preferring eval splits over train, and the
    groups left out because their last logged loss is not a number (see the docstring)."""
    rows = frame.copy()
    loss = pd.to_numeric(rows["loss"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    rows["_finite"] = np.isfinite(loss)
    rows["_inf"] = np.isinf(loss)
    if "split" in rows.columns:
        rows["_eval"] = rows["split"].astype(str).str.startswith("eval")
        has_eval = rows.groupby(keys, dropna=False)["_eval"].transform("any")
        rows = rows[rows["_eval"] | ~has_eval].drop(columns="_eval")
    order = [*keys, "step"] if "step" in rows.columns else keys
    rows = rows.sort_values(order, kind="stable")
    # A loss-less row followed by a loss in its group: the LR is logged between losses.
    later = rows.iloc[::-1].groupby(keys, dropna=False)["_finite"].cummax().iloc[::-1]
    rows["_gaps"] = (~rows["_finite"] & later).groupby([rows[k] for k in keys]).transform("any")
    excluded: dict[str, str] = {}
    for _, row in rows.groupby(keys, dropna=False).tail(1).iterrows():
        if row["_finite"] or (row["_gaps"] and not row["_inf"]):
            continue
        where = f" (step {int(row['step'])})" if "step" in row and pd.notna(row["step"]) else ""
        excluded[" / ".join(str(row[k]) for k in keys)] = (
            f"its last logged loss{where} is NaN or infinite: a diverged run, with no final loss"
        )
    picked = rows[rows["_finite"]].groupby(keys, dropna=False).tail(1)
    names = picked[keys].astype(str).agg(" / ".join, axis=1)
    picked = picked[~names.isin(list(excluded))]
    return picked.drop(columns=["_finite", "_inf", "_gaps"]), excluded


def select_for_law(law: Law, frame: pd.DataFrame, **law_options: Any) -> pd.DataFrame:
    """The rows ``law`` fits under the default selection (`fitting.selection`), with sizes
    filled in; FitError when nothing is left. The diverged runs it leaves out are named
    in a `DataWarning` and in ``attrs["excluded_runs"]``."""
    from fitting.selection import select

    return select(law, frame, None, **law_options).frame


def selection_of(source: dict[str, Any]) -> dict[str, Any]:
    """The selection recorded with a saved fit (what data it saw), JSON-safe."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in source.items() if v is not None}
