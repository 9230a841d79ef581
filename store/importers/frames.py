"""Building the canonical `_points` and `_runs` tables every format parser produces.

`_points`: run, split, step, tokens, flops, lr, loss, family, sampling_ratio, _rec (the
record's index in the file, for error lines). `_runs`: run plus the per-run facts.
"""

from __future__ import annotations

import math

import duckdb

from store.errors import BadInputError
from store.importers.aliases import INTEGER_FACTS, RUN_FACTS
from store.importers.scan import ScannedFile, record_location
from store.importers.validate import check_unique
from store.sql import quote_ident

LN2 = math.log(2.0)
_VALUES = ("tokens", "flops", "lr", "loss", "family", "sampling_ratio")


def loss_expr(column: str, bits: bool) -> str:
    """The loss in nats: bits are multiplied by ln 2."""
    return f"({quote_ident(column)} * {LN2!r})" if bits else quote_ident(column)


def create_points(con: duckdb.DuckDBPyConnection, select_sql: str) -> None:
    """`select_sql` yields POINT_FIELDS + _rec in file order; expose it as `_points`.

    A view, not a copy: the rows are read once more when they are handed to the store.
    """
    con.execute(f"CREATE OR REPLACE TEMP VIEW _points AS {select_sql}")


def dedupe_points(con: duckdb.DuckDBPyConnection, scanned: ScannedFile, where: str) -> None:
    """Reject keys repeated with different values; merge repeats that agree.

    The exact check; callers first try the cheap proof in `store.uniq`.
    """
    repeats = check_unique(con, scanned, "_points", ("run", "split", "step"), _VALUES, where)
    if repeats:
        cols = ", ".join(f"max({c}) AS {c}" for c in _VALUES)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _merged AS SELECT run, split, step, "
            f"{cols}, min(_rec) AS _rec FROM _points GROUP BY run, split, step ORDER BY _rec"
        )
        con.execute("CREATE OR REPLACE TEMP VIEW _points AS SELECT * FROM _merged")


def check_series_facts(
    con: duckdb.DuckDBPyConnection, scanned: ScannedFile, columns: dict[str, str]
) -> None:
    """A family and a sampling ratio belong to a (run, split) curve: one value each.

    `columns` maps `family` / `sampling_ratio` to the file's column. Blank cells are
    fine (the curve's value is the one given elsewhere in it).
    """
    for fact, column in columns.items():
        bad = con.execute(
            f"SELECT run, split FROM _points GROUP BY run, split "
            f"HAVING count(DISTINCT {fact}) > 1 ORDER BY min(_rec) LIMIT 1"
        ).fetchone()
        if bad is None:
            continue
        row = con.execute(
            f"SELECT min(_rec) FROM _points WHERE run = $1 AND split = $2 AND {fact} IS "
            f"DISTINCT FROM (SELECT {fact} FROM _points WHERE run = $1 AND split = $2 "
            f"AND {fact} IS NOT NULL ORDER BY _rec LIMIT 1) AND {fact} IS NOT NULL",
            list(bad),
        ).fetchone()
        line, cell = record_location(scanned, int(row[0]) if row else 0, column)
        raise BadInputError(
            f"expected one {fact} per (run, split) curve, but run {bad[0]!r} split "
            f"{bad[1]!r} has several; got {cell!r}",
            file=scanned.path.name,
            line=line,
            column=column,
        )


def create_runs(
    con: duckdb.DuckDBPyConnection,
    scanned: ScannedFile,
    run_sql: str,
    facts: dict[str, str],
    source: str = "_raw",
) -> None:
    """`_runs`: one row per run with its facts, which must not vary within a run.

    `run_sql` is the run-name expression over `source` (the loaded file, `_raw`);
    `facts` maps fact -> file column.
    """
    for fact, column in facts.items():
        bad = con.execute(
            f"SELECT {run_sql} AS r FROM _raw GROUP BY r "
            f"HAVING count(DISTINCT {quote_ident(column)}) > 1 LIMIT 1"
        ).fetchone()
        if bad is not None:
            row = con.execute(
                f"SELECT min(rowid) FROM _raw WHERE {run_sql} = ? AND {quote_ident(column)} IS "
                f"DISTINCT FROM (SELECT {quote_ident(column)} FROM _raw WHERE {run_sql} = ? "
                "ORDER BY rowid LIMIT 1)",
                [bad[0], bad[0]],
            ).fetchone()
            line, cell = record_location(scanned, int(row[0]) if row else 0, column)
            raise BadInputError(
                f"expected one {fact} per run, but run {bad[0]!r} has several; got {cell!r}",
                file=scanned.path.name,
                line=line,
                column=column,
            )
    parts = []
    for fact in RUN_FACTS:
        if fact in facts:
            kind = (
                "BIGINT" if fact in INTEGER_FACTS else ("VARCHAR" if fact == "family" else "DOUBLE")
            )
            parts.append(f"CAST(any_value({quote_ident(facts[fact])}) AS {kind}) AS {fact}")
        else:
            parts.append(f"NULL AS {fact}")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _runs AS SELECT {run_sql} AS run, {', '.join(parts)} "
        f"FROM {source} GROUP BY 1 ORDER BY min(rowid)"
    )
