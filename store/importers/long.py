"""Long format: one row per (run, split, step), in the canonical schema or its aliases.

`run` defaults to the file's stem (Luo et al.'s `cosine_24000.csv` holds one run);
`split` defaults to `train`, or `eval` when the loss column is a held-out alias such as
`val_loss`. Per-run facts (params, ...) may ride along and must be constant per run.
"""

from __future__ import annotations

import duckdb

from store.errors import BadInputError
from store.importers.aliases import RUN_FACTS, is_eval_loss
from store.importers.csvread import read_typed
from store.importers.frames import create_points, create_runs, loss_expr
from store.importers.scan import ScannedFile
from store.importers.validate import check_blank_loss, check_numbers, name_sql, run_name_sql
from store.sql import quote_ident, quote_text

# Read as VARCHAR: names, and steps (checked exactly by `store.importers.steps`).
TEXT_COLUMNS = ("run", "split", "family", "step")


def column_or_null(inv: dict[str, str], name: str, cast: str = "DOUBLE") -> str:
    return f"CAST({quote_ident(inv[name])} AS {cast})" if name in inv else f"NULL::{cast}"


def require(inv: dict[str, str], names: tuple[str, ...], scanned: ScannedFile, fmt: str) -> None:
    missing = [n for n in names if n not in inv]
    if missing:
        raise BadInputError(
            f"missing required column(s) {missing} for the {fmt} format; found "
            f"{scanned.header} (see docs/csv-formats.md for the accepted names)",
            file=scanned.path.name,
            line=scanned.header_lines,
        )


def parse_long(
    con: duckdb.DuckDBPyConnection,
    scanned: ScannedFile,
    mapping: dict[str, str],
    *,
    bits: bool,
    run_name: str,
) -> tuple[list[str], str]:
    """Load, validate and build `_points`/`_runs`; return (warnings, key column)."""
    inv = {canon: src for src, canon in mapping.items()}
    require(inv, ("step", "loss"), scanned, "long")
    numeric = {src for src, canon in mapping.items() if canon not in TEXT_COLUMNS}
    read_typed(con, scanned, numeric)
    check_numbers(con, scanned, mapping)
    check_blank_loss(con, scanned, inv["loss"], inv.get("lr"))
    warnings = []
    run_sql = run_name_sql(con, scanned, mapping)
    if run_sql is None:
        run_sql = quote_text(run_name)
        warnings.append(f"no run column: all rows are run {run_name!r}")
    default_split = "eval" if is_eval_loss(inv["loss"]) else "train"
    split_sql = (
        f"coalesce(nullif({name_sql(con, inv['split'])}, ''), '{default_split}')"
        if "split" in inv
        else f"'{default_split}'"
    )
    create_points(
        con,
        f"""SELECT {run_sql} AS run, {split_sql} AS split,
            CAST({quote_ident(inv["step"])} AS BIGINT) AS step,
            {column_or_null(inv, "tokens")} AS tokens, {column_or_null(inv, "flops")} AS flops,
            {column_or_null(inv, "lr")} AS lr, {loss_expr(inv["loss"], bits)} AS loss,
            {column_or_null(inv, "family", "VARCHAR")} AS family,
            {column_or_null(inv, "sampling_ratio")} AS sampling_ratio, rowid AS _rec
        FROM _raw""",
    )
    facts = {f: inv[f] for f in RUN_FACTS if f in inv and f not in ("family", "sampling_ratio")}
    create_runs(con, scanned, run_sql, facts)
    return warnings, inv["step"]
