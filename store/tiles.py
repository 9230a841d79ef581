"""Curve tiles: a per-series M4 summary on a fixed log grid, kept up to date by writes.

Reading a 10-million-point curve for a plot should not scan 10 million rows. Each series
(see `store.series`) is summarised, for each x column (step, tokens, flops), in tiles of
a fixed grid, `tile = floor(32 * log2(1 + x))` (32 tiles per doubling of x), holding the
count and the M4 picks: first and last point by x, lowest and highest loss. The grid
does not depend on the data, so new points merge into existing tiles (picks of two
tiles combine exactly); when a write replaces points, the touched series are rebuilt
from their points instead. A plot then reads at most a few thousand tile rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

# The columns a curve can be plotted against (and tiled by), the step first.
XKINDS = ("step", "tokens", "flops")
TILES_PER_OCTAVE = 32
PICKS = ("f", "l", "lo", "hi")
# The summary of one tile, after its key.
PICK_COLUMNS = ("n", *(f"{p}_{c}" for p in PICKS for c in ("x", "step", "loss")))
KEY = ("series", "xkind", "tile")
TILE_COLUMNS = (*KEY, *PICK_COLUMNS)

DDL = f"""CREATE TABLE curve_tiles (
  series INTEGER NOT NULL, xkind VARCHAR NOT NULL, tile INTEGER NOT NULL, n BIGINT NOT NULL,
  {", ".join(f"{p}_x DOUBLE, {p}_step BIGINT, {p}_loss DOUBLE" for p in PICKS)}
)"""


def tile_sql(x: str) -> str:
    # 1.0: in DOUBLE, so the largest BIGINT step does not overflow the addition.
    return f"CAST(floor({TILES_PER_OCTAVE} * log2(1.0 + greatest({x}, 0))) AS INTEGER)"


def aggregate_sql(
    source: str,
    where: str = "TRUE",
    kinds: tuple[str, ...] = XKINDS,
    key: str = "series",
) -> str:
    """Tiles of every series in `source`, for these x kinds.

    `source` has step, loss and the x columns plus the series key columns `key` (the
    series id for stored points, `run, split` for pending shards of one project).
    Output columns: the key columns, xkind, tile, then PICK_COLUMNS.
    """
    parts = []
    for x in kinds:
        # With x = step the step picks are min/max (cheaper than arg_min(step, step)).
        f_step = "min(step)" if x == "step" else f"arg_min(step, {x})"
        l_step = "max(step)" if x == "step" else f"arg_max(step, {x})"
        parts.append(
            f"""SELECT {key}, '{x}' AS xkind, {tile_sql(x)} AS tile,
                count(*) AS n,
                min({x}) AS f_x, {f_step} AS f_step, arg_min(loss, {x}) AS f_loss,
                max({x}) AS l_x, {l_step} AS l_step, arg_max(loss, {x}) AS l_loss,
                arg_min({x}, loss) AS lo_x, arg_min(step, loss) AS lo_step,
                min(loss) AS lo_loss,
                arg_max({x}, loss) AS hi_x, arg_max(step, loss) AS hi_step,
                max(loss) AS hi_loss
            FROM {source} WHERE ({where}) AND loss IS NOT NULL AND {x} IS NOT NULL
            GROUP BY {key}, tile"""
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


def _same_tile(a: str, b: str) -> str:
    return " AND ".join(f"{a}.{k} = {b}.{k}" for k in KEY)


def add_points(con: duckdb.DuckDBPyConnection, staged: str) -> None:
    """Fold new points (none of which replaced a stored point) into the tiles.

    `staged` has the columns of `point_values` (series id, step, x columns, loss).
    """
    cols = ", ".join(TILE_COLUMNS)
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
        f"SEMI JOIN _new_tiles b ON {_same_tile('t', 'b')}"
    )
    shared = con.execute("SELECT count(*) FROM _old_tiles").fetchone()
    if shared and shared[0]:
        con.execute(f"DELETE FROM curve_tiles t USING _old_tiles o WHERE {_same_tile('t', 'o')}")
        merged = merge_sql(
            f"(SELECT {cols} FROM _old_tiles UNION ALL SELECT {cols} FROM _new_tiles)",
            ", ".join(KEY),
        )
        con.execute(f"INSERT INTO curve_tiles ({cols}) SELECT {cols} FROM ({merged})")
    else:
        con.execute(f"INSERT INTO curve_tiles ({cols}) SELECT {cols} FROM _new_tiles")


def rebuild(con: duckdb.DuckDBPyConnection, series: str) -> None:
    """Recompute the tiles of the series whose ids are in column `id` of `series`."""
    cols = ", ".join(TILE_COLUMNS)
    con.execute(f"DELETE FROM curve_tiles t USING {series} s WHERE t.series = s.id")
    source = f"(SELECT v.* FROM point_values v SEMI JOIN {series} s ON v.series = s.id)"
    con.execute(f"INSERT INTO curve_tiles ({cols}) SELECT {cols} FROM ({aggregate_sql(source)})")
