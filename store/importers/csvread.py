"""Bulk, typed CSV reading with DuckDB's `read_csv`, turning rejected cells into errors.

Every column is declared (numeric ones as DOUBLE, the rest as VARCHAR) so DuckDB never
guesses; cells that do not parse are collected in a rejects table and the first one is
reported with its file, line and column.
"""

from __future__ import annotations

import duckdb

from store.errors import BadInputError
from store.importers.scan import ScannedFile


def read_typed(
    con: duckdb.DuckDBPyConnection,
    scanned: ScannedFile,
    numeric: set[str],
    table: str = "_raw",
) -> None:
    """Load the file into temp table `table` (insertion order = record order)."""
    columns = {name: ("DOUBLE" if name in numeric else "VARCHAR") for name in scanned.header}
    if len(columns) != len(scanned.header):
        dupes = sorted({h for h in scanned.header if scanned.header.count(h) > 1})
        raise BadInputError(
            f"duplicate column names {dupes}; expected each column once",
            file=scanned.path.name,
            line=scanned.header_lines,
        )
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM read_csv(?, "
            "header = true, auto_detect = false, columns = ?, delim = ?, quote = '\"', "
            "escape = '\"', skip = ?, null_padding = false, "
            "store_rejects = true, rejects_table = '_rejects', rejects_scan = '_rejects_scan', "
            "rejects_limit = 5)",
            [str(scanned.path), columns, scanned.delimiter, scanned.header_lines - 1],
        )
    except duckdb.Error as err:
        raise BadInputError(
            f"could not read the file as CSV: {str(err).splitlines()[0]}",
            file=scanned.path.name,
        ) from err
    first = con.execute(
        "SELECT line, column_name, error_type, csv_line, error_message FROM _rejects "
        "ORDER BY line LIMIT 1"
    ).fetchone()
    if first is not None:
        _raise_reject(scanned, *first)


def _raise_reject(
    scanned: ScannedFile, line: int, column: str | None, kind: str, raw: str, message: str
) -> None:
    name = scanned.path.name
    if kind == "CAST" and column:
        cell = _cell(raw, scanned, column)
        raise BadInputError(f"expected a number, got {cell!r}", file=name, line=line, column=column)
    if kind in ("TOO MANY COLUMNS", "MISSING COLUMNS"):
        got = len(raw.split(scanned.delimiter))
        raise BadInputError(
            f"expected {len(scanned.header)} fields as in the header, got {got}",
            file=name,
            line=line,
        )
    if kind == "INVALID UNICODE":
        raise BadInputError("expected UTF-8 text", file=name, line=line)
    raise BadInputError(f"could not read this row: {message}", file=name, line=line, column=column)


def _cell(raw: str, scanned: ScannedFile, column: str) -> str:
    import csv

    # DuckDB's copy of the line may carry blank lines that preceded it.
    raw = next((part for part in reversed(raw.splitlines()) if part.strip()), raw)
    try:
        row = next(csv.reader([raw], delimiter=scanned.delimiter))
        return row[scanned.header.index(column)].strip()
    except (StopIteration, IndexError, ValueError, csv.Error):
        return raw
