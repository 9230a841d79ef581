"""The one place SQL text is quoted. Values go to DuckDB as parameters wherever DuckDB takes
them; these are for the few places it does not (identifiers, view bodies, file lists)."""

from __future__ import annotations

from collections.abc import Iterable


def quote_ident(name: str) -> str:
    """A column or table name as a DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def quote_text(value: str) -> str:
    """A string as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def quote_list(values: Iterable[str]) -> str:
    """A SQL list literal of strings (for SQL that repeats a source or lives in a view)."""
    return "[" + ", ".join(quote_text(v) for v in values) + "]"


def where_equal(filters: Iterable[tuple[str, object]]) -> tuple[str, list[object]]:
    """A `WHERE` clause (or "") matching each (column, value) whose value is not None,
    with the values as parameters; the column names are the caller's, never user text."""
    given = [(column, value) for column, value in filters if value is not None]
    if not given:
        return "", []
    return "WHERE " + " AND ".join(f"{column} = ?" for column, _ in given), [v for _, v in given]
