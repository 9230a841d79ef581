"""Write-side helpers shared by ingest and import: replace points, keep run summaries.

Every write names its series (see `store.series`), then calls `replace_points`, which
deletes the (series, step) keys it is about to insert and inserts the new rows, so
re-ingesting or re-importing the same points changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

from store import series, tiles

_COLS = ", ".join(series.STAGED_COLUMNS)


def replace_points(
    con: duckdb.DuckDBPyConnection, rows: str, *, status: str = "running", ids: bool = False
) -> int:
    """Upsert the points of query `rows` into `point_values`.

    `rows` yields project, run, split, step, tokens, flops, lr, loss with unique
    (project, run, split, step) keys, or with `ids` the columns of `point_values`
    (series id first); its series are named in `_batch` (see `store.series.assign`).
    Leaves `_touched(project, run)`: the runs written to, the missing ones created with
    `status`.
    """
    with_ids = rows if ids else series.with_ids_sql(rows)
    con.execute("CREATE OR REPLACE TEMP TABLE _touched AS SELECT DISTINCT project, run FROM _batch")
    ensure_runs(con, "_touched", status=status)
    old = con.execute("SELECT count(*) FROM _batch WHERE NOT fresh").fetchone()
    if not (old and old[0]):
        # Only new series: nothing to replace, and every point they have is new, so the
        # rows go straight in and the tiles are read back from the table.
        row = insert_unordered(con, f"INSERT INTO point_values ({_COLS}) {with_ids}")
        added = "(SELECT v.* FROM point_values v SEMI JOIN _batch b ON v.series = b.id)"
        tiles.add_points(con, added)
        series.note_last_steps(con, added)
        return int(row[0]) if row else 0
    con.execute(f"CREATE OR REPLACE TEMP TABLE _staged AS {with_ids}")
    # A live run appends: its batch starts above every stored step, so the delete (a
    # scan of the run's points) is needed only when some batch reaches back.
    reaches_back = con.execute(
        "SELECT count(*) FROM (SELECT series, min(step) AS lo FROM _staged GROUP BY series) b "
        "JOIN series s ON s.id = b.series WHERE b.lo <= s.last_step"
    ).fetchone()
    gone = None
    if reaches_back and reaches_back[0]:
        gone = con.execute(
            "DELETE FROM point_values v USING _staged s WHERE v.series = s.series "
            "AND v.step = s.step"
        ).fetchone()
    row = insert_unordered(con, f"INSERT INTO point_values ({_COLS}) SELECT {_COLS} FROM _staged")
    series.note_last_steps(con, "_staged")
    # Tiles merge new points exactly, but cannot forget replaced ones: rebuild those.
    if gone and gone[0]:
        tiles.rebuild(con, "_batch")
    else:
        tiles.add_points(con, "_staged")
    return int(row[0]) if row else 0


def insert_unordered(con: duckdb.DuckDBPyConnection, sql: str) -> tuple | None:
    """Run a bulk INSERT without keeping the source's row order in storage.

    Every read of `points` orders its rows, so their physical order does not matter, and
    letting DuckDB's threads append in any order saves about a quarter of the insert's
    CPU on 10 M rows. The setting is global to the database instance: it is restored
    right after the statement.
    """
    con.execute("SET preserve_insertion_order = false")
    try:
        return con.execute(sql).fetchone()
    finally:
        con.execute("RESET preserve_insertion_order")


def ensure_runs(con: duckdb.DuckDBPyConnection, source: str, *, status: str) -> None:
    """Create missing project and run rows for the (project, run) pairs in `source`."""
    con.execute(
        f"INSERT INTO projects (project) SELECT DISTINCT project FROM {source} "
        "ON CONFLICT DO NOTHING"
    )
    con.execute(
        f"INSERT INTO runs (project, run, status) SELECT DISTINCT project, run, ? "
        f"FROM {source} ON CONFLICT DO NOTHING",
        [status],
    )


def refresh_summaries(con: duckdb.DuckDBPyConnection, touched: str = "_touched") -> None:
    """Recompute n_points / last_* on the runs listed in `touched` from their points."""
    con.execute(
        f"""
        UPDATE runs SET n_points = s.n_points, last_step = s.last_step,
            last_loss = s.last_loss, last_tokens = s.last_tokens,
            last_flops = s.last_flops, updated_at = now()
        FROM (
            SELECT k.project, k.run, count(*) AS n_points, max(step) AS last_step,
                coalesce(
                    arg_max(loss, step) FILTER (WHERE k.split = 'train' AND loss IS NOT NULL),
                    arg_max(loss, step) FILTER (WHERE loss IS NOT NULL)) AS last_loss,
                arg_max(tokens, step) FILTER (WHERE tokens IS NOT NULL) AS last_tokens,
                arg_max(flops, step) FILTER (WHERE flops IS NOT NULL) AS last_flops
            FROM point_values v JOIN {series.of_runs(touched)} k ON v.series = k.id
            GROUP BY k.project, k.run
        ) s
        WHERE runs.project = s.project AND runs.run = s.run
        """
    )
