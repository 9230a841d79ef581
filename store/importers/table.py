"""One-row-per-model tables as papers publish them: each row is a run with one point.

A row needs a loss and at least one of params / tokens / flops. The run is named from a
`run`/`model`/`name` column, else from its size (`N=1.2e+08,D=2.4e+09`). When tokens
are absent but flops and params are there, tokens = flops / (6 params) (the
Chinchilla convention C = 6ND). A `split` (or Gadre et al.'s `val_data`) column keeps
several evaluation sets of one model apart.
"""

from __future__ import annotations

import duckdb

from store.errors import BadInputError
from store.importers.aliases import RUN_FACTS
from store.importers.csvread import read_typed
from store.importers.frames import create_points, create_runs, loss_expr
from store.importers.long import TEXT_COLUMNS, column_or_null, require
from store.importers.scan import ScannedFile
from store.importers.validate import check_blank_loss, check_numbers, run_name_sql
from store.sql import quote_ident

SIZE_COLUMNS = ("params", "tokens", "flops", "encoder_params", "decoder_params")


def _name_sql(inv: dict[str, str]) -> str:
    """A run name from the row's size columns, e.g. N=1.2e+08,D=2.4e+09."""
    parts = []
    labels = (("params", "N"), ("tokens", "D"), ("flops", "C"))
    labels += (("encoder_params", "Ne"), ("decoder_params", "Nd"))
    for canon, label in labels:
        if canon in inv:
            parts.append(f"'{label}=' || coalesce(printf('%.4g', {quote_ident(inv[canon])}), '?')")
    return " || ',' || ".join(parts)


def parse_table(
    con: duckdb.DuckDBPyConnection,
    scanned: ScannedFile,
    mapping: dict[str, str],
    *,
    bits: bool,
    run_name: str,
) -> tuple[list[str], str]:
    """Load, validate and build `_points`/`_runs`; return (warnings, key column)."""
    del run_name  # each row is its own run
    inv = {canon: src for src, canon in mapping.items()}
    require(inv, ("loss",), scanned, "table")
    # A table needs the sizes of the law it is fitted with, whichever they are (an
    # encoder/decoder table needs no params); the law's own check names what it lacks.
    if not set(SIZE_COLUMNS) & set(inv):
        raise BadInputError(
            f"a table of final losses needs a size column ({', '.join(SIZE_COLUMNS)}); "
            f"found {scanned.header}",
            file=scanned.path.name,
            line=scanned.header_lines,
        )
    numeric = {src for src, canon in mapping.items() if canon not in TEXT_COLUMNS}
    read_typed(con, scanned, numeric)
    check_numbers(con, scanned, mapping)
    check_blank_loss(con, scanned, inv["loss"], None)
    warnings: list[str] = []
    run_sql = run_name_sql(con, scanned, mapping)
    if run_sql is None:
        # Identical sizes get #2, #3, ... so no two rows fold into one run.
        base = _name_sql(inv)
        run_sql = f"({base} || CASE WHEN _k > 1 THEN '#' || _k ELSE '' END)"
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _raw AS SELECT *, row_number() OVER "
            f"(PARTITION BY {base} ORDER BY rowid) AS _k FROM _raw ORDER BY rowid"
        )
        warnings.append("no run column: runs named from their size (N=params, D=tokens, C=flops)")
    tokens = column_or_null(inv, "tokens")
    if "tokens" not in inv and {"flops", "params"} <= set(inv):
        tokens = f"({quote_ident(inv['flops'])} / (6.0 * {quote_ident(inv['params'])}))"
        warnings.append("tokens computed as flops / (6 params)")
    split_sql = (
        f"coalesce(nullif(trim({quote_ident(inv['split'])}), ''), 'train')"
        if "split" in inv
        else "'train'"
    )
    step = f"CAST({quote_ident(inv['step'])} AS BIGINT)" if "step" in inv else "0::BIGINT"
    create_points(
        con,
        f"""SELECT {run_sql} AS run, {split_sql} AS split, {step} AS step,
            {tokens} AS tokens, {column_or_null(inv, "flops")} AS flops,
            {column_or_null(inv, "lr")} AS lr, {loss_expr(inv["loss"], bits)} AS loss,
            {column_or_null(inv, "family", "VARCHAR")} AS family,
            {column_or_null(inv, "sampling_ratio")} AS sampling_ratio, rowid AS _rec
        FROM _raw ORDER BY rowid""",
    )
    facts = {f: inv[f] for f in RUN_FACTS if f in inv}
    create_runs(con, scanned, run_sql, facts)
    return warnings, inv["loss"]
