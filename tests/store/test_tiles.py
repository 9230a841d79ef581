"""Curve tiles kept up to date by writes equal tiles rebuilt from the points."""

from __future__ import annotations

import numpy as np

from store import Store, tiles
from store.inbox import InboxWriter
from store.ingest import ingest_inbox


def _tiles(store: Store, source: str | None = None) -> list[tuple]:
    cols = ", ".join(tiles.TILE_COLUMNS)
    sql = (
        f"SELECT {cols} FROM curve_tiles"
        if source is None
        else f"SELECT {cols} FROM ({tiles.aggregate_sql(source)})"
    )
    with store.connect(read_only=True) as con:
        return sorted(con.execute(sql).fetchall(), key=repr)


def test_incremental_tiles_equal_a_rebuild(store: Store) -> None:
    rng = np.random.default_rng(1)
    for part in range(4):  # a live run ingested in four pieces, eval every 50 steps
        steps = np.arange(part * 2500, (part + 1) * 2500)
        with InboxWriter(store, "p", "live") as w:
            w.log_many({"step": steps, "loss": rng.random(len(steps)) + 2, "tokens": steps * 64.0})
            w.log_many({"step": steps[::50], "split": "eval", "loss": rng.random(50) + 2})
        ingest_inbox(store)
    assert _tiles(store) == _tiles(store, "point_values")
    # Re-logging steps replaces points: the touched series are rebuilt.
    with InboxWriter(store, "p", "live") as w:
        w.log_many({"step": np.arange(100, 200), "loss": rng.random(100) + 5})
    ingest_inbox(store)
    assert _tiles(store) == _tiles(store, "point_values")
    with store.connect(read_only=True) as con:
        total = con.execute(
            "SELECT sum(n) FROM curve_tiles t JOIN series s ON t.series = s.id "
            "WHERE xkind = 'step' AND split = 'train'"
        ).fetchone()
    assert total == (10_000,)
