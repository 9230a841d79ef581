"""Steps read as exact integers: a step column is loaded as text and checked here.

DuckDB's DOUBLE rounds steps above 2^53, and its text-to-BIGINT cast rounds `1.5` to 2,
so neither may read a step. A cell whose BIGINT cast prints back as the same text is an
exact integer (nearly every cell: one vectorised pass); the few other spellings
(`100.0` as pandas writes integer columns with gaps, R's `1e+05`, `+5`, ` 7 `) are
decided exactly with `Decimal`, once per distinct text. A step must be a whole number in
[0, 2^63), the range of the store's BIGINT; anything else is refused with its cell.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import duckdb

from store.errors import BadInputError
from store.importers.scan import ScannedFile, record_location
from store.importers.validate import first_where
from store.sql import quote_ident

BIGINT_LIMIT = 2**63
NON_NEGATIVE = "a non-negative integer"


def exact_step(text: str) -> int | None:
    """The integer a cell spells exactly, or None (fraction, not a number, too large)."""
    try:
        value = Decimal(text.strip().replace("_", "x"))  # `1_000` is no way to write a step
    except InvalidOperation:
        return None
    if not value.is_finite() or value != value.to_integral_value():
        return None
    step = int(value)
    return step if 0 <= step < BIGINT_LIMIT else None


def check_steps(
    con: duckdb.DuckDBPyConnection, scanned: ScannedFile, column: str, required: str = "TRUE"
) -> None:
    """Validate step column `column` of `_raw` (VARCHAR) and leave it castable exactly.

    After this, `CAST(column AS BIGINT)` is the exact step of every record. Fails on the
    first record (in file order) whose step is negative, fractional, not a number or out
    of the BIGINT range, or blank where SQL condition `required` holds (a W&B run's own
    `_step` is blank on rows where that run logged nothing).
    """
    q = quote_ident(column)
    fast = f"TRY_CAST({q} AS BIGINT)"
    odd = f"{q} IS NOT NULL AND CAST({fast} AS VARCHAR) IS DISTINCT FROM {q}"
    # One pass for the common case: the first blank or negative step, and whether any
    # cell is spelled otherwise than as a plain integer.
    row = con.execute(
        f"SELECT min(rowid) FILTER (WHERE ({q} IS NULL AND ({required})) OR _fast < 0), "
        f"count(*) FILTER (WHERE "
        f"{q} IS NOT NULL AND CAST(_fast AS VARCHAR) IS DISTINCT FROM {q}) "
        f"FROM (SELECT *, rowid, {fast} AS _fast FROM _raw)"
    ).fetchone()
    first_bad, n_odd = (row[0], row[1]) if row else (None, 0)
    exact: dict[str, int] = {}
    if n_odd:
        rows = con.execute(f"SELECT DISTINCT {q} FROM _raw WHERE {odd}").fetchall()
        other = [str(r[0]) for r in rows]
        exact = {text: step for text in other if (step := exact_step(text)) is not None}
        bad = [text for text in other if text not in exact]
        if bad:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _bad_steps AS SELECT unnest(?) AS text", [bad]
            )
            rowid = first_where(con, "_raw", f"{q} IN (SELECT text FROM _bad_steps)")
            first_bad = min(r for r in (first_bad, rowid) if r is not None)
    if first_bad is not None:
        _fail(scanned, int(first_bad), column)
    if exact:
        _rewrite(con, column, exact)


def _fail(scanned: ScannedFile, rowid: int, column: str) -> None:
    line, cell = record_location(scanned, rowid, column)
    expected = f"{NON_NEGATIVE} step" if not cell.strip() else NON_NEGATIVE
    try:
        value = Decimal(cell.strip())
    except InvalidOperation:
        value = None
    if value is not None and value.is_finite() and value >= BIGINT_LIMIT:
        expected = f"{NON_NEGATIVE} below 2^63 = {BIGINT_LIMIT:,} (the store's BIGINT)"
    raise BadInputError(
        f"expected {expected}, got {cell!r}", file=scanned.path.name, line=line, column=column
    )


def _rewrite(con: duckdb.DuckDBPyConnection, column: str, exact: dict[str, int]) -> None:
    """Replace the column by its exact BIGINT values (record order kept: rowids matter)."""
    q = quote_ident(column)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _step_text AS SELECT unnest(?) AS text, "
        "unnest(?)::BIGINT AS step",
        [list(exact), list(exact.values())],
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _raw AS SELECT * REPLACE (coalesce((SELECT s.step "
        f"FROM _step_text s WHERE s.text = _raw.{q}), TRY_CAST(_raw.{q} AS BIGINT)) AS {q}) "
        "FROM _raw ORDER BY rowid"
    )
