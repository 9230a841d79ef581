"""Parquet files through the CSV importer: the same layouts, names, checks and messages.

A Parquet file (told by its `PAR1` magic, whatever its name) is scanned into a
`ScannedFile` whose header is its column names, then loaded into the `_raw` table the
layout parsers read (`read_typed`): numeric columns as DOUBLE, the others as text, so
steps are checked exactly as a CSV's cells are (an int64 column is exact; `100.0` from a
float column is read as 100). A float NaN is a missing value (pandas writes its missing
numbers as NaN), as a blank CSV cell is; infinities are refused. Errors name the row
(1-based, in file order) instead of a line: `runs.parquet, row 3, column 'loss': ...`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from store.errors import BadInputError
from store.sql import quote_ident, quote_text

if TYPE_CHECKING:
    from store.importers.scan import ScannedFile

MAGIC = b"PAR1"
KIND = "parquet"
_CHUNK = 16 << 20


def is_parquet(path: Path) -> bool:
    """Whether `path` starts and ends with Parquet's magic bytes."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
            fh.seek(-4, 2)
            return head == MAGIC and fh.read(4) == MAGIC
    except OSError:
        return False


def scan_parquet(path: Path) -> ScannedFile:
    """Hash the file and read its schema; a file without rows is refused."""
    import pyarrow.parquet as pq

    from store.importers.scan import ScannedFile

    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    try:
        meta = pq.ParquetFile(path).metadata
        schema = pq.read_schema(path)
    except Exception as err:  # pyarrow's ArrowInvalid, OSError
        raise BadInputError(
            f"not a readable Parquet file: {str(err).splitlines()[0]}", file=path.name
        ) from None
    header = [str(name).strip() for name in schema.names]
    if meta.num_rows == 0:
        raise BadInputError(
            "the file has columns but no rows; expected at least one row", file=path.name
        )
    if len(set(header)) != len(header) or "" in header:
        raise BadInputError(f"expected each column once and named, got {header}", file=path.name)
    return ScannedFile(path, digest.hexdigest(), size, header, "", 0, (), KIND)


def _source(path: Path) -> str:
    return f"read_parquet({quote_text(str(path))}, file_row_number = true)"


def read_typed(
    con: duckdb.DuckDBPyConnection, scanned: ScannedFile, numeric: set[str], table: str = "_raw"
) -> None:
    """Load the file into temp table `table` in row order (rowid = row index)."""
    names = list(scanned.header)
    raw = schema_columns(scanned.path)
    parts = []
    for name in names:
        q = quote_ident(raw[name])
        if name in numeric:
            value = f"TRY_CAST({q} AS DOUBLE)"
            parts.append(
                f"CASE WHEN isnan({value}) THEN NULL ELSE {value} END AS {quote_ident(name)}"
            )
        else:
            parts.append(f"CAST({q} AS VARCHAR) AS {quote_ident(name)}")
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {', '.join(parts)} "
            f"FROM {_source(scanned.path)} ORDER BY file_row_number"
        )
    except duckdb.Error as err:
        raise BadInputError(
            f"could not read the file as Parquet: {str(err).splitlines()[0]}",
            file=scanned.path.name,
        ) from None
    for name in sorted(numeric & set(names)):
        _check_cast(con, scanned, raw[name], name)


def schema_columns(path: Path) -> dict[str, str]:
    """{header name (trimmed): the column's name as the file spells it}."""
    import pyarrow.parquet as pq

    return {str(n).strip(): str(n) for n in pq.read_schema(path).names}


def _check_cast(
    con: duckdb.DuckDBPyConnection, scanned: ScannedFile, raw_name: str, name: str
) -> None:
    """A numeric column's cell that is not a number (text in a Parquet string column)."""
    q = quote_ident(raw_name)
    row = con.execute(
        f"SELECT file_row_number, CAST({q} AS VARCHAR) FROM {_source(scanned.path)} "
        f"WHERE {q} IS NOT NULL AND TRY_CAST({q} AS DOUBLE) IS NULL "
        "ORDER BY file_row_number LIMIT 1"
    ).fetchone()
    if row is not None:
        raise BadInputError(
            f"expected a number, got {row[1]!r}",
            file=f"{scanned.path.name}, row {int(row[0]) + 1}",
            column=name,
        )


def row_location(scanned: ScannedFile, index: int, column: str) -> tuple[int, str]:
    """(the 1-based row of record `index`, the cell as text) for error messages."""
    raw = schema_columns(scanned.path)
    if column not in raw:
        return index + 1, ""
    q = quote_ident(raw[column])
    row = duckdb.execute(
        f"SELECT CAST({q} AS VARCHAR) FROM {_source(scanned.path)} WHERE file_row_number = ?",
        [index],
    ).fetchone()
    return index + 1, "" if row is None or row[0] is None else str(row[0])


def relocate(err: BadInputError) -> BadInputError:
    """A parser's error about a Parquet file, naming its row where the CSV's line was."""
    if err.line is None or (err.file or "").endswith(f", row {err.line}"):
        return err
    message = err.message.replace(" than line ", " than row ")
    where = err.file if not err.line else f"{err.file}, row {err.line}"
    return BadInputError(message, file=where, column=err.column)
