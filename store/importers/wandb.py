"""Weights & Biases chart exports: `Step` plus one `<run> - <metric>` column per series.

`__MIN`/`__MAX` columns (the band W&B draws when it samples) are ignored. A loss
metric whose name says held-out (`val/loss`, `eval_loss`, ...) goes to split `eval`;
an LR metric (`lr`, `learning_rate`, `train/lr`) becomes the train series' lr. A blank
cell means the run did not log at that step.
"""

from __future__ import annotations

import duckdb

from store.errors import BadInputError
from store.importers.aliases import canonical
from store.importers.csvread import read_typed
from store.importers.detect import metric_kind, split_wandb
from store.importers.frames import create_points, create_runs, loss_expr
from store.importers.long import sql_text
from store.importers.scan import ScannedFile
from store.importers.validate import check_numbers, quote


def classify(metric: str) -> tuple[str, str] | None:
    """('loss', split) or ('lr', 'train') for a metric name, None when neither."""
    kind = metric_kind(metric)
    return None if kind is None or kind[0] == "step" else kind


def series_columns(
    header: list[str], step_column: str
) -> tuple[dict[tuple[str, str], dict[str, str]], dict[str, str], list[str]]:
    """{(run, split): {'loss'|'lr': column}}, the mapping used, and warnings."""
    series: dict[tuple[str, str], dict[str, str]] = {}
    mapping, ignored, extras = {step_column: "step"}, [], 0
    for column in header:
        if column == step_column:
            continue
        match = split_wandb(column)
        if match is None or match.extra:
            extras += match is not None
            continue
        kind = classify(match.metric)
        if kind is None:
            ignored.append(column)
            continue
        field, split = kind
        slot = series.setdefault((match.run, split), {})
        if field in slot:
            ignored.append(column)
            continue
        slot[field] = column
        mapping[column] = field
    warnings = []
    if extras:
        warnings.append(f"ignored {extras} __MIN/__MAX columns")
    if ignored:
        warnings.append("ignored columns: " + ", ".join(repr(c) for c in ignored))
    return series, mapping, warnings


def unused_columns(header: list[str]) -> list[str]:
    """Series columns the import ignored (not a loss or an LR), band columns aside."""
    step_column = next((h for h in header if canonical(h) == "step"), "")
    _, used, _ = series_columns(header, step_column)
    return [h for h in header if h not in used and not getattr(split_wandb(h), "extra", "")]


def parse_wandb(
    con: duckdb.DuckDBPyConnection,
    scanned: ScannedFile,
    mapping: dict[str, str],
    *,
    bits: bool,
    run_name: str,
) -> tuple[list[str], str]:
    """Load, validate and build `_points`/`_runs`; return (warnings, key column)."""
    del mapping, run_name
    step_column = next(h for h in scanned.header if canonical(h) == "step")
    series, used, warnings = series_columns(scanned.header, step_column)
    # The LR is logged once per run; attach it to the train series.
    for (run, split), slot in list(series.items()):
        if split == "train" or "lr" not in slot:
            continue
        series.setdefault((run, "train"), {}).setdefault("lr", slot.pop("lr"))
    if not any("loss" in slot for slot in series.values()):
        raise BadInputError(
            "a W&B export needs at least one '<run> - <loss metric>' column; found "
            f"{scanned.header}",
            file=scanned.path.name,
            line=scanned.header_lines,
        )
    read_typed(con, scanned, set(used) - {step_column})
    check_numbers(con, scanned, used)
    selects = []
    for (run, split), slot in series.items():
        loss = loss_expr(slot["loss"], bits) if "loss" in slot else "NULL::DOUBLE"
        lr = quote(slot["lr"]) if "lr" in slot else "NULL::DOUBLE"
        present = " OR ".join(f"{quote(c)} IS NOT NULL" for c in slot.values())
        selects.append(
            f"SELECT {sql_text(run)} AS run, {sql_text(split)} AS split, "
            f"CAST({quote(step_column)} AS BIGINT) AS step, NULL::DOUBLE AS tokens, "
            f"NULL::DOUBLE AS flops, {lr} AS lr, {loss} AS loss, NULL::VARCHAR AS family, "
            f"NULL::DOUBLE AS sampling_ratio, rowid AS _rec FROM _raw WHERE {present}"
        )
    create_points(con, " UNION ALL ".join(selects))
    con.execute("CREATE OR REPLACE TEMP TABLE _run_names AS SELECT DISTINCT run FROM _points")
    create_runs(con, scanned, "run", {}, source="_run_names")
    return warnings, step_column
