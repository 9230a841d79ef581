"""Bulk, typed CSV reading with DuckDB's `read_csv`, turning rejected cells into errors.

Every column is declared (numeric ones as DOUBLE, the rest, steps included, as VARCHAR:
see `store.importers.steps`) so DuckDB never guesses; cells that do not parse are
collected in a rejects table and the first one is reported with its file, line and
column. DuckDB's own line count treats a quoted multi-line cell as one line, so the
rejected record is placed again by its cells, with the csv module.
"""

from __future__ import annotations

import duckdb

from store.errors import BadInputError
from store.importers.scan import MAX_LINE_BYTES, Record, ScannedFile, find_record
from store.sql import quote_ident


def read_typed(
    con: duckdb.DuckDBPyConnection,
    scanned: ScannedFile,
    numeric: set[str],
    table: str = "_raw",
) -> None:
    """Load the file into temp table `table` (insertion order = record order).

    Columns in `numeric` are DOUBLE, every other one (steps too) VARCHAR. A Parquet
    file is loaded by `store.importers.parquet` the same way.
    """
    if scanned.kind != "csv":
        from store.importers import parquet

        parquet.read_typed(con, scanned, numeric, table)
        return
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
            "escape = '\"', skip = ?, null_padding = false, max_line_size = ?, "
            "store_rejects = true, rejects_table = '_rejects', rejects_scan = '_rejects_scan', "
            "rejects_limit = 5)",
            [
                str(scanned.path),
                columns,
                scanned.delimiter,
                scanned.header_lines - 1,
                # Looser than the scan's limit, which is the one users meet: DuckDB counts
                # a last line without a line break one byte longer.
                MAX_LINE_BYTES + 1024,
            ],
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
    for column in scanned.empty:
        _check_empty(con, scanned, column, table)


def _check_empty(
    con: duckdb.DuckDBPyConnection, scanned: ScannedFile, column: str, table: str
) -> None:
    """A column without a name may stay only while it holds no values."""
    from store.importers.scan import record_location

    q = quote_ident(column)
    row = con.execute(f"SELECT min(rowid) FROM {table} WHERE trim({q}) <> ''").fetchone()
    if row is None or row[0] is None:
        return
    line, cell = record_location(scanned, int(row[0]), column)
    position = scanned.header.index(column) + 1
    raise BadInputError(
        f"the header has no name for column {position}, which holds values (got {cell!r}); "
        "expected a name for every column with values",
        file=scanned.path.name,
        line=line,
    )


def _raise_reject(
    scanned: ScannedFile, line: int, column: str | None, kind: str, raw: str, message: str
) -> None:
    name = scanned.path.name
    record = _rejected_record(scanned, raw)
    if record is not None:
        line = record.line
    if kind == "CAST" and column:
        pos = scanned.header.index(column)
        cell = record.cells[pos].strip() if record else _cell(raw, scanned, column)
        line = record.line_of(pos) if record else line
        raise BadInputError(f"expected a number, got {cell!r}", file=name, line=line, column=column)
    if kind in ("TOO MANY COLUMNS", "MISSING COLUMNS"):
        got = len(record.cells) if record else len(raw.split(scanned.delimiter))
        raise BadInputError(
            f"expected {len(scanned.header)} fields as in the header, got {got}",
            file=name,
            line=line,
        )
    if kind == "INVALID UNICODE":
        raise BadInputError("expected UTF-8 text", file=name, line=line)
    if kind == "LINE SIZE OVER MAXIMUM":
        raise BadInputError(
            f"expected rows of at most {MAX_LINE_BYTES:,} bytes (a quoted cell spanning "
            "lines counts whole)",
            file=name,
            line=line,
        )
    raise BadInputError(f"could not read this row: {message}", file=name, line=line, column=column)


def _last_row(raw: str, scanned: ScannedFile) -> list[str] | None:
    """The cells of DuckDB's copy of the row (which may carry blank lines before it)."""
    import csv
    import io

    try:
        rows = [r for r in csv.reader(io.StringIO(raw), delimiter=scanned.delimiter) if r]
    except csv.Error:
        return None
    return rows[-1] if rows else None


def _rejected_record(scanned: ScannedFile, raw: str) -> Record | None:
    """The first record with the rejected row's cells: the rejected one, since an
    identical record before it would have been rejected first."""
    cells = _last_row(raw, scanned)
    return find_record(scanned, cells) if cells else None


def _cell(raw: str, scanned: ScannedFile, column: str) -> str:
    row = _last_row(raw, scanned)
    try:
        return row[scanned.header.index(column)].strip() if row else raw
    except (IndexError, ValueError):
        return raw
