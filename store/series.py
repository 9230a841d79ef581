"""Series ids: every (project, run, split) curve is stored under a small integer.

Points live in `point_values` keyed by that id (the `points` view joins the names back),
so a bulk write appends numbers only. A write first names its series (`assign`), then
hands its rows to `store.writes.replace_points`, which swaps names for ids
(`with_ids_sql`), staging the rows first when they may replace stored ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from store.schema import POINT_VALUE_COLUMNS

if TYPE_CHECKING:
    import duckdb

# The columns a staged batch has: exactly those of `point_values`.
STAGED_COLUMNS = tuple(POINT_VALUE_COLUMNS)


def assign(con: duckdb.DuckDBPyConnection, keys: str) -> None:
    """Give every series in `keys` an id, creating the missing ones.

    `keys` has one row per series: project, run, split, family, sampling_ratio (NULL
    family or ratio leaves a stored value as it is). Leaves temp table `_batch` (the
    same columns plus `id` and `fresh`, which marks series new to the store).
    """
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _batch AS SELECT s.id, k.project, k.run, k.split, "
        "k.family, k.sampling_ratio, s.id IS NULL AS fresh "
        f"FROM {keys} k LEFT JOIN series s USING (project, run, split)"
    )
    counts = con.execute("SELECT count(*) FILTER (fresh), count(*) FROM _batch").fetchone()
    fresh, total = counts if counts else (0, 0)
    if fresh:
        con.execute(
            "INSERT INTO series (project, run, split, family, sampling_ratio) "
            "SELECT project, run, split, family, sampling_ratio FROM _batch WHERE fresh "
            "ORDER BY project, run, split"
        )
        con.execute(
            "UPDATE _batch SET id = s.id FROM series s WHERE _batch.fresh "
            "AND s.project = _batch.project AND s.run = _batch.run AND s.split = _batch.split"
        )
    if total > fresh:
        con.execute(
            "UPDATE series SET family = coalesce(b.family, series.family), "
            "sampling_ratio = coalesce(b.sampling_ratio, series.sampling_ratio) "
            "FROM _batch b WHERE NOT b.fresh AND series.id = b.id "
            "AND (b.family IS DISTINCT FROM series.family AND b.family IS NOT NULL "
            "OR b.sampling_ratio IS DISTINCT FROM series.sampling_ratio "
            "AND b.sampling_ratio IS NOT NULL)"
        )


def with_ids_sql(rows: str) -> str:
    """`rows` (project, run, split and the numbers) as `point_values` rows: series ids
    from `_batch` instead of names."""
    numbers = ", ".join(f"p.{c}" for c in STAGED_COLUMNS if c != "series")
    return (
        f"SELECT b.id AS series, {numbers} FROM ({rows}) p JOIN _batch b "
        "ON p.project = b.project AND p.run = b.run AND p.split = b.split"
    )


def note_last_steps(con: duckdb.DuckDBPyConnection, added: str) -> None:
    """Raise `series.last_step` to the highest step among the points just `added`."""
    con.execute(
        f"UPDATE series SET last_step = greatest(coalesce(series.last_step, a.hi), a.hi) "
        f"FROM (SELECT series, max(step) AS hi FROM {added} GROUP BY series) a "
        "WHERE series.id = a.series"
    )


def of_runs(runs: str) -> str:
    """SQL for the series (id, project, run, split) of the (project, run) pairs in `runs`."""
    return (
        f"(SELECT s.id, s.project, s.run, s.split FROM series s SEMI JOIN {runs} r "
        "ON s.project = r.project AND s.run = r.run)"
    )
