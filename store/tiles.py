"""Curve tiles: a per-series M4 summary on a fixed log grid, kept up to date by writes.

Reading a 10-million-point curve for a plot should not scan 10 million rows. Each
(project, run, split) series is summarised, for each x column (step, tokens, flops), in
tiles of a fixed grid, `tile = floor(32 * log2(1 + x))` (32 tiles per doubling of x),
holding the count and the M4 picks: first and last point by x, lowest and highest loss.
The grid does not depend on the data, so new points merge into existing tiles (picks
of two tiles combine exactly); when a write replaces points, the touched series are
rebuilt from their points instead. A plot then reads at most a few thousand tile rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

XKINDS = ("step", "tokens", "flops")
TILES_PER_OCTAVE = 32
PICKS = ("f", "l", "lo", "hi")
TILE_COLUMNS = (
    "project",
    "run",
    "split",
    "xkind",
    "tile",
    "n",
    *(f"{p}_{c}" for p in PICKS for c in ("x", "step", "loss")),
)
KEY = ("project", "run", "split", "xkind", "tile")

DDL = f"""CREATE TABLE curve_tiles (
  project VARCHAR NOT NULL, run VARCHAR NOT NULL, split VARCHAR NOT NULL,
  xkind VARCHAR NOT NULL, tile INTEGER NOT NULL, n BIGINT NOT NULL,
  {", ".join(f"{p}_x DOUBLE, {p}_step BIGINT, {p}_loss DOUBLE" for p in PICKS)}
)"""


def tile_sql(x: str) -> str:
    return f"CAST(floor({TILES_PER_OCTAVE} * log2(1 + greatest({x}, 0))) AS INTEGER)"


def aggregate_sql(source: str, where: str = "TRUE", kinds: tuple[str, ...] = XKINDS) -> str:
    """Tiles of every series in `source` (canonical point columns), for these x kinds."""
    parts = []
    for x in kinds:
        parts.append(
            f"""SELECT project, run, split, '{x}' AS xkind, {tile_sql(x)} AS tile,
                count(*) AS n,
                min({x}) AS f_x, arg_min(step, {x}) AS f_step, arg_min(loss, {x}) AS f_loss,
                max({x}) AS l_x, arg_max(step, {x}) AS l_step, arg_max(loss, {x}) AS l_loss,
                arg_min({x}, loss) AS lo_x, arg_min(step, loss) AS lo_step,
                min(loss) AS lo_loss,
                arg_max({x}, loss) AS hi_x, arg_max(step, loss) AS hi_step,
                max(loss) AS hi_loss
            FROM {source} WHERE ({where}) AND loss IS NOT NULL AND {x} IS NOT NULL
            GROUP BY project, run, split, tile"""
        )
    return " UNION ALL ".join(parts)


def merge_sql(source: str, group: str) -> str:
    """Combine tile rows of `source` grouped by `group` (their picks merge exactly)."""
    return f"""SELECT {group}, sum(n) AS n,
        min(f_x) AS f_x, arg_min(f_step, f_x) AS f_step, arg_min(f_loss, f_x) AS f_loss,
        max(l_x) AS l_x, arg_max(l_step, l_x) AS l_step, arg_max(l_loss, l_x) AS l_loss,
        arg_min(lo_x, lo_loss) AS lo_x, arg_min(lo_step, lo_loss) AS lo_step,
        min(lo_loss) AS lo_loss,
        arg_max(hi_x, hi_loss) AS hi_x, arg_max(hi_step, hi_loss) AS hi_step,
        max(hi_loss) AS hi_loss
    FROM {source} GROUP BY {group}"""


def add_points(con: duckdb.DuckDBPyConnection, staged: str) -> None:
    """Fold new points (none of which replaced a stored point) into the tiles."""
    cols = ", ".join(TILE_COLUMNS)
    key = ", ".join(KEY)
    # Only the x columns the batch has: a run without FLOPs costs no FLOP tiles.
    counts = con.execute(
        f"SELECT {', '.join(f'count({x})' for x in XKINDS)} FROM {staged}"
    ).fetchone() or (0,) * len(XKINDS)
    kinds = tuple(x for x, count in zip(XKINDS, counts, strict=True) if count)
    if not kinds:
        return
    con.execute(f"CREATE OR REPLACE TEMP TABLE _new_tiles AS {aggregate_sql(staged, kinds=kinds)}")
    # Tiles the batch shares with stored ones (usually one per series, at the seam).
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _old_tiles AS SELECT t.* FROM curve_tiles t "
        "SEMI JOIN _new_tiles b ON t.project = b.project AND t.run = b.run "
        "AND t.split = b.split AND t.xkind = b.xkind AND t.tile = b.tile"
    )
    shared = con.execute("SELECT count(*) FROM _old_tiles").fetchone()
    if shared and shared[0]:
        con.execute(
            "DELETE FROM curve_tiles t USING _old_tiles o WHERE t.project = o.project "
            "AND t.run = o.run AND t.split = o.split AND t.xkind = o.xkind AND t.tile = o.tile"
        )
        merged = merge_sql(
            f"(SELECT {cols} FROM _old_tiles UNION ALL SELECT {cols} FROM _new_tiles)", key
        )
        con.execute(f"INSERT INTO curve_tiles ({cols}) SELECT {cols} FROM ({merged})")
    else:
        con.execute(f"INSERT INTO curve_tiles ({cols}) SELECT {cols} FROM _new_tiles")


def rebuild(con: duckdb.DuckDBPyConnection, touched: str) -> None:
    """Recompute the tiles of every series of the (project, run) pairs in `touched`."""
    cols = ", ".join(TILE_COLUMNS)
    con.execute(
        f"DELETE FROM curve_tiles t USING {touched} r WHERE t.project = r.project AND t.run = r.run"
    )
    source = (
        f"(SELECT p.* FROM points p SEMI JOIN {touched} r "
        "ON p.project = r.project AND p.run = r.run)"
    )
    con.execute(f"INSERT INTO curve_tiles ({cols}) SELECT {cols} FROM ({aggregate_sql(source)})")
