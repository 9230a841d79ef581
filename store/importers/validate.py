"""Checks on a loaded file, each one vectorised in DuckDB, each failure naming its cell.

Every check looks for the first offending record (by position in the file) and raises
`BadInputError` with the file, the physical line, the file's own column name, what was
expected and the raw cell as written.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from store.errors import BadInputError
from store.importers.scan import ScannedFile, record_location
from store.sql import quote_ident


def fail_at(scanned: ScannedFile, rowid: int, column: str, expected: str) -> None:
    """Raise the error for record `rowid`, quoting the cell as the file has it."""
    line, cell = record_location(scanned, rowid, column)
    raise BadInputError(
        f"expected {expected}, got {cell!r}", file=scanned.path.name, line=line, column=column
    )


def first_where(con: duckdb.DuckDBPyConnection, table: str, condition: str) -> int | None:
    row = con.execute(f"SELECT min(rowid) FROM {table} WHERE {condition}").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def check(
    con: duckdb.DuckDBPyConnection,
    scanned: ScannedFile,
    column: str,
    condition: str,
    expected: str,
    table: str = "_raw",
) -> None:
    """Fail on the first record where `condition` (SQL over `col`) holds."""
    rowid = first_where(con, table, condition.replace("col", quote_ident(column)))
    if rowid is not None:
        fail_at(scanned, rowid, column, expected)


def check_numbers(
    con: duckdb.DuckDBPyConnection, scanned: ScannedFile, mapping: dict[str, str]
) -> None:
    """Finite values everywhere; the per-column rules of the canonical schema.

    Step columns are text (see `store.importers.steps`); the rest DOUBLE.
    """
    from store.importers.steps import check_steps

    for column, canon in mapping.items():
        if canon in ("run", "split", "family"):
            continue
        if canon == "step":
            check_steps(con, scanned, column)
            continue
        check(con, scanned, column, "isnan(col) OR isinf(col)", "a finite number")
        if canon == "loss":
            check(con, scanned, column, "col < 0", "a non-negative loss (nats or bits)")
        elif canon in ("params", "params_non_embedding", "encoder_params", "decoder_params"):
            check(
                con,
                scanned,
                column,
                "col <= 0 OR col >= 9.2e18",
                "a positive number of parameters",
            )
        elif canon == "unique_tokens":
            check(
                con,
                scanned,
                column,
                "col <= 0 OR col >= 9.2e18 OR col <> round(col)",
                "a positive whole number of unique tokens",
            )
        elif canon == "sampling_ratio":
            check(con, scanned, column, "col < 0 OR col > 1", "a ratio between 0 and 1")
        else:
            check(con, scanned, column, "col < 0", "a non-negative number")


def check_text(
    con: duckdb.DuckDBPyConnection, scanned: ScannedFile, column: str, what: str
) -> None:
    check(con, scanned, column, "col IS NULL OR trim(col) = ''", what)


def check_blank_loss(
    con: duckdb.DuckDBPyConnection,
    scanned: ScannedFile,
    loss_column: str,
    lr_column: str | None,
) -> None:
    """A blank loss is fine on a row that logs an lr (the LR is logged more often)."""
    if lr_column is None:
        check(con, scanned, loss_column, "col IS NULL", "a number")
        return
    rowid = first_where(
        con, "_raw", f"{quote_ident(loss_column)} IS NULL AND {quote_ident(lr_column)} IS NULL"
    )
    if rowid is not None:
        fail_at(scanned, rowid, loss_column, "a number (a loss may be blank only where lr is set)")


def check_unique(
    con: duckdb.DuckDBPyConnection,
    scanned: ScannedFile,
    table: str,
    keys: Sequence[str],
    values: Sequence[str],
    where_column: str,
) -> bool:
    """Fail on keys that repeat with different values; True when exact repeats exist.

    `table` has the canonical columns and `_rec` (record index in the file).
    """
    key = ", ".join(keys)
    # fetchall: a result left half-read blocks the connection's next query.
    n_rows, n_keys = con.execute(
        f"SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT {key} FROM {table})) FROM {table}"
    ).fetchall()[0]
    if n_rows == n_keys:
        return False
    # Per column, so rows that complement each other (loss here, lr there) still merge.
    differs = " OR ".join(f"count(DISTINCT {v}) > 1" for v in values)
    clash = con.execute(
        f"""SELECT min(_rec), max(_rec) FROM {table} GROUP BY {key}
        HAVING {differs} ORDER BY min(_rec) LIMIT 1"""
    ).fetchone()
    if clash is not None:
        first_line, _ = record_location(scanned, int(clash[0]), where_column)
        line, _ = record_location(scanned, int(clash[1]), where_column)
        raise BadInputError(
            f"duplicate ({key}) with a different value than line {first_line}; "
            "expected each point once (if these rows belong to different runs, e.g. an LR "
            "sweep, map every column that tells them apart to run: --map model=run "
            "--map peak_lr=run)",
            file=scanned.path.name,
            line=line,
            column=where_column,
        )
    return True


def name_sql(con: duckdb.DuckDBPyConnection, column: str) -> str:
    """SQL for a text column's cells as names: trimmed, unless no cell needs it.

    Checked on the distinct values, which costs less than trimming millions of cells
    in every later statement.
    """
    q = quote_ident(column)
    row = con.execute(f"SELECT bool_or({q} <> trim({q})) FROM (SELECT DISTINCT {q} FROM _raw)")
    needs = row.fetchone()
    return f"trim({q})" if needs and needs[0] else q


def run_name_sql(
    con: duckdb.DuckDBPyConnection, scanned: ScannedFile, mapping: dict[str, str]
) -> str | None:
    """SQL for the run name: the column mapped to `run`, or several joined with '/'.

    Several columns tell runs apart when a name repeats across a sweep (Li et al.'s
    `model` across learning rates): map each of them to `run`. None without any.
    """
    columns = [c for c in scanned.header if mapping.get(c) == "run"]
    for column in columns:
        check_text(con, scanned, column, "a run name")
    parts = [name_sql(con, column) for column in columns]
    if len(parts) > 1:
        return f"concat_ws('/', {', '.join(parts)})"
    return parts[0] if parts else None
