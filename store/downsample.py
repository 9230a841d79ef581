"""Downsampling a curve inside DuckDB: min/max buckets per (run, split) series.

Each series with more than `max_points` points is cut into `max_points // 4` equal-width
buckets of the x column; each bucket keeps its first and last point by x and its lowest
and highest loss (the M4 scheme), so spikes and the curve's ends survive while at most
`max_points` points leave the database. Shorter series are returned whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from store.errors import BadInputError
from store.pending import pending, points_source, with_inbox_retry

if TYPE_CHECKING:
    import pandas as pd

    from store.core import Store

X_COLUMNS = ("step", "tokens", "flops")
_OUT = ("step", "tokens", "flops", "lr", "loss")


def curve_sql(source: str, x: str, with_splits: bool) -> str:
    """The downsampling query over `source`; parameters: project, runs, [splits], K, K//4."""
    splits = "AND list_contains(?, split)" if with_splits else ""
    row = "struct_pack(" + ", ".join(f"{c} := {c}" for c in _OUT) + ")"
    cols = ", ".join(_OUT)
    return f"""
    WITH src AS (
        SELECT run, split, {cols} FROM {source}
        WHERE project = ? AND list_contains(?, run) {splits}
            AND loss IS NOT NULL AND {x} IS NOT NULL),
    params AS (SELECT ?::BIGINT AS k, ?::BIGINT AS nb),
    ext AS (
        SELECT run, split, min({x}) AS x0, max({x}) AS x1, count(*) AS n
        FROM src GROUP BY run, split),
    small AS (
        SELECT s.run, s.split, {", ".join("s." + c for c in _OUT)}
        FROM src s JOIN ext e ON s.run = e.run AND s.split = e.split, params
        WHERE e.n <= params.k),
    buckets AS (
        SELECT s.run, s.split,
            least(floor((s.{x} - e.x0) * params.nb / (e.x1 - e.x0)), params.nb - 1) AS b,
            arg_min({row}, s.{x}) AS f, arg_max({row}, s.{x}) AS l,
            arg_min({row}, s.loss) AS lo, arg_max({row}, s.loss) AS hi
        FROM src s JOIN ext e ON s.run = e.run AND s.split = e.split, params
        WHERE e.n > params.k
        GROUP BY s.run, s.split, b),
    big AS (
        SELECT DISTINCT run, split, unnest(p) FROM (
            SELECT run, split, unnest([f, l, lo, hi]) AS p FROM buckets))
    SELECT run, split, {cols} FROM small
    UNION ALL SELECT run, split, {cols} FROM big
    ORDER BY run, split, {x}, step"""


def curve(
    store: Store,
    project: str,
    runs: Sequence[str],
    *,
    x: str = "step",
    max_points: int = 2000,
    splits: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Each selected (run, split) series as at most `max_points` points, ordered by x.

    Columns: run, split, step, tokens, flops, lr, loss. Rows without a loss (LR-only
    rows) or without an x value are skipped.
    """
    if x not in X_COLUMNS:
        raise BadInputError(f"x must be one of {X_COLUMNS}, got {x!r}")
    if max_points < 4:
        raise BadInputError(f"max_points must be at least 4, got {max_points}")
    runs = [runs] if isinstance(runs, str) else list(runs)

    def read() -> pd.DataFrame:
        with store.connect(read_only=True) as con:
            source, source_params = points_source(pending(store, con))
            sql = curve_sql(source, x, splits is not None)
            params = [*source_params, project, runs]
            if splits is not None:
                params.append(list(splits))
            params += [max_points, max_points // 4]
            return con.execute(sql, params).df()

    return with_inbox_retry(read)
