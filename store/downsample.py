"""Downsampling a curve inside DuckDB: min/max buckets per (run, split) series.

A series with more than `max_points` points is cut into `max_points // 4` buckets of
its x column; each bucket keeps its first and last point by x and its lowest and
highest loss (the M4 scheme), so spikes and the curve's ends survive while at most
`max_points` points leave the database. Shorter series are returned whole.

Buckets are equal in log(1 + x - x0) by default, because loss curves are read on log
axes: equal linear buckets would fold the first decades of training into a handful of
points. With log spacing the buckets are read from the curve tiles (`store.tiles`),
so a 10-million-point run costs a few thousand tile rows, not a scan; linear spacing
scans the points (one GROUP BY with constant bucket bounds shared by all series).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from store import tiles
from store.errors import BadInputError
from store.pending import Pending, pending, points_source, with_inbox_retry
from store.sql import quote_list

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from store.core import Store

SPACINGS = ("log", "linear")


def _filters(x: str, with_splits: bool) -> str:
    splits = "AND list_contains(?, split)" if with_splits else ""
    return (
        f"project = ? AND list_contains(?, run) {splits} AND loss IS NOT NULL AND {x} IS NOT NULL"
    )


def _bucket_sql(x: str, spacing: str) -> str:
    """Bucket index in [0, nb) from parameters x0, x1, nb (in that order)."""
    if spacing == "log":
        pos = f"ln(1 + {x} - $x0) / ln(1 + $x1 - $x0)"
    else:
        pos = f"({x} - $x0) / ($x1 - $x0)"
    return f"least(floor({pos} * $nb), $nb - 1)"


def _columns(x: str) -> tuple[str, ...]:
    return ("step", "loss") if x == "step" else ("step", x, "loss")


def bucket_sql(source: str, x: str, spacing: str, with_splits: bool) -> str:
    """The M4 query: four picks per bucket, as rows (run, split, step, [x,] loss)."""
    picks = {
        "f": (f"min({x})", f"arg_min(loss, {x})", f"arg_min(step, {x})"),
        "l": (f"max({x})", f"arg_max(loss, {x})", f"arg_max(step, {x})"),
        "lo": (f"arg_min({x}, loss)", "min(loss)", "arg_min(step, loss)"),
        "hi": (f"arg_max({x}, loss)", "max(loss)", "arg_max(step, loss)"),
    }
    aggs = []
    for name, (px, ploss, pstep) in picks.items():
        aggs += [f"{px} AS {name}_x", f"{ploss} AS {name}_loss"]
        if x != "step":
            aggs.append(f"{pstep} AS {name}_step")
    inner = (
        f"SELECT run, split, {_bucket_sql(x, spacing)} AS b, {', '.join(aggs)} "
        f"FROM {source} WHERE {_filters(x, with_splits)} "
        "AND list_contains($big, run || chr(0) || split) GROUP BY run, split, b"
    )
    unions = []
    for name in picks:
        step = f"{name}_x" if x == "step" else f"{name}_step"
        xcol = "" if x == "step" else f", {name}_x AS {x}"
        unions.append(f"SELECT run, split, {step} AS step{xcol}, {name}_loss AS loss FROM m")
    return f"WITH m AS MATERIALIZED ({inner}) SELECT DISTINCT * FROM ({' UNION ALL '.join(unions)})"


def downsampled_curve(
    store: Store,
    project: str,
    runs: Sequence[str],
    *,
    x: str = "step",
    max_points: int = 2000,
    splits: Sequence[str] | None = None,
    spacing: str = "log",
) -> pd.DataFrame:
    """Each selected (run, split) series as at most `max_points` points, ordered by x.

    Columns: run, split, step, the x column when it is not step, loss. Rows without a
    loss (LR-only rows) or without an x value are skipped.
    """
    if x not in tiles.XKINDS:
        raise BadInputError(f"x must be one of {tiles.XKINDS}, got {x!r}")
    if spacing not in SPACINGS:
        raise BadInputError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    if max_points < 4:
        raise BadInputError(f"max_points must be at least 4, got {max_points}")
    names = [runs] if isinstance(runs, str) else list(runs)

    def read() -> pd.DataFrame:
        with store.connect(read_only=True) as con:
            p = pending(store, con)
            if spacing == "log":
                return _read_tiles(con, p, project, names, x, max_points, splits)
            source, source_params = points_source(p)
            return _read(con, source, source_params, project, names, x, max_points, splits, spacing)

    return with_inbox_retry(read)


def _read(
    con: duckdb.DuckDBPyConnection,
    source: str,
    source_params: list[Any],
    project: str,
    runs: list[str],
    x: str,
    max_points: int,
    splits: Sequence[str] | None,
    spacing: str,
) -> pd.DataFrame:
    base = [*source_params, project, runs] + ([list(splits)] if splits is not None else [])
    where = _filters(x, splits is not None)
    stats = con.execute(
        f"SELECT run, split, count(*), min({x}), max({x}) FROM {source} WHERE {where} "
        "GROUP BY run, split",
        base,
    ).fetchall()
    small = [f"{r}\0{s}" for r, s, n, _, _ in stats if n <= max_points]
    big = [row for row in stats if row[2] > max_points]
    cols = ", ".join(_columns(x))
    parts, params = [], []
    if small:
        parts.append(
            f"SELECT run, split, {cols} FROM {source} WHERE {where} "
            "AND list_contains(?, run || chr(0) || split)"
        )
        params += [*base, small]
    frames = []
    if parts:
        frames.append(con.execute(parts[0], params).df())
    if big:
        named = dict(zip(("p" + str(i) for i in range(len(base))), base, strict=True))
        sql = bucket_sql(source, x, spacing, splits is not None)
        for i in range(len(base)):
            sql = sql.replace("?", f"$p{i}", 1)
        x0 = float(min(row[3] for row in big))
        x1 = float(max(row[4] for row in big))
        named |= {
            "x0": x0,
            "x1": max(x1, x0 + 1e-12),
            "nb": max_points // 4,
            "big": [f"{r}\0{s}" for r, s, *_ in big],
        }
        frames.append(con.execute(sql, named).df())
    return _combine(frames, x)


def _small_points(
    con: duckdb.DuckDBPyConnection,
    p: Pending,
    project: str,
    runs: list[str],
    x: str,
    splits: Sequence[str] | None,
    keys: list[str],
) -> pd.DataFrame:
    """Every point of the short series `keys` (run NUL split)."""
    source, source_params = points_source(p)
    where = _filters(x, splits is not None)
    params = [*source_params, project, runs] + ([list(splits)] if splits is not None else [])
    return con.execute(
        f"SELECT run, split, {', '.join(_columns(x))} FROM {source} WHERE {where} "
        "AND list_contains(?, run || chr(0) || split)",
        [*params, keys],
    ).df()


def _read_tiles(
    con: duckdb.DuckDBPyConnection,
    p: Pending,
    project: str,
    runs: list[str],
    x: str,
    max_points: int,
    splits: Sequence[str] | None,
) -> pd.DataFrame:
    """Log-spaced M4 from the stored tiles (plus tiles of pending shards)."""
    cols = ", ".join(("run", "split", "tile", *tiles.PICK_COLUMNS))
    where = "project = ? AND list_contains(?, run)" + (
        " AND list_contains(?, split)" if splits is not None else ""
    )
    base = [project, runs] + ([list(splits)] if splits is not None else [])
    stored = (
        f"(SELECT s.run, s.split, t.* FROM curve_tiles t JOIN "
        f"(SELECT id, run, split FROM series WHERE {where}) s ON t.series = s.id "
        "WHERE t.xkind = ?)"
    )
    sources = [f"SELECT {cols} FROM {stored}"]
    params = [*base, x]
    if p.point_files:
        shards = f"read_parquet({quote_list(p.point_files)}, union_by_name = true)"
        pending_tiles = tiles.aggregate_sql(shards, where, (x,), key="run, split")
        sources.append(f"SELECT {cols} FROM ({pending_tiles})")
        params += base
    union = "(" + " UNION ALL ".join(sources) + ")"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _ct AS {tiles.merge_sql(union, 'run, split, tile')}",
        params,
    )
    stats = con.execute(
        "SELECT run, split, sum(n), min(tile), max(tile) FROM _ct GROUP BY run, split"
    ).fetchall()
    small = [f"{r}\0{s}" for r, s, n, _, _ in stats if n <= max_points]
    big = [row for row in stats if row[2] > max_points]
    frames = []
    if small:
        frames.append(_small_points(con, p, project, runs, x, splits, small))
    if big:
        frames.append(_big_from_tiles(con, big, x, max_points))
    return _combine(frames, x)


def _big_from_tiles(
    con: duckdb.DuckDBPyConnection, big: list[tuple], x: str, max_points: int
) -> pd.DataFrame:
    """Merge the tiles of long series into max_points // 4 buckets; four picks each."""
    t0, t1 = min(int(r[3]) for r in big), max(int(r[4]) for r in big)
    bucketed = (
        "(SELECT *, CAST(floor((tile - $t0) * $nb / ($t1 - $t0 + 1)) AS INTEGER) AS b "
        "FROM _ct WHERE list_contains($big, run || chr(0) || split))"
    )
    merged = tiles.merge_sql(bucketed, "run, split, b")
    unions = []
    for name in tiles.PICKS:
        xcol = "" if x == "step" else f", {name}_x AS {x}"
        unions.append(f"SELECT run, split, {name}_step AS step{xcol}, {name}_loss AS loss FROM m")
    sql = f"WITH m AS MATERIALIZED ({merged}) SELECT DISTINCT * FROM ({' UNION ALL '.join(unions)})"
    named = {
        "t0": t0,
        "t1": t1,
        "nb": max_points // 4,
        "big": [f"{r}\0{s}" for r, s, *_ in big],
    }
    return con.execute(sql, named).df()


def _combine(frames: list[pd.DataFrame], x: str) -> pd.DataFrame:
    import pandas as pd

    columns = ["run", "split", *_columns(x)]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: [] for c in columns})
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return out[columns].sort_values(["run", "split", x, "step"], ignore_index=True)
