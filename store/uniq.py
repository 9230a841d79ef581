"""A cheap proof that (series, step) keys are unique, without sorting or hashing rows.

Rows arrive in file order. Cut them into blocks wherever the series changes or the step
fails to rise; inside a block steps strictly rise, so keys there are unique. Keys are
then unique overall when no two blocks of the same series overlap in step range, which
is a check over blocks (a few per shard), not rows. Series are told apart by a 64-bit
hash of their names: a collision can only merge two series into one, which makes the
check stricter, never looser. When the proof fails the caller runs the exact check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa


def keys_unique(con: duckdb.DuckDBPyConnection, relation: str, series_sql: str) -> bool:
    """True when no (series, step) repeats in `relation` (read in its natural order)."""
    arrays = con.execute(f"SELECT hash({series_sql}) AS h, step FROM {relation}").fetchnumpy()
    series = np.asarray(arrays["h"])
    step = np.asarray(arrays["step"])
    return blocks_disjoint(series, step)


def blocks_disjoint(series: np.ndarray, step: np.ndarray) -> bool:
    """The block argument above, on arrays of series ids and steps in file order."""
    n = len(step)
    if n < 2:
        return True
    cut = np.flatnonzero((series[1:] != series[:-1]) | (step[1:] <= step[:-1])) + 1
    starts = np.concatenate(([0], cut))
    ends = np.concatenate((cut, [n])) - 1
    block_series, lo, hi = series[starts], step[starts], step[ends]
    order = np.lexsort((lo, block_series))
    block_series, lo, hi = block_series[order], lo[order], hi[order]
    same = block_series[1:] == block_series[:-1]
    return not np.any(same & (lo[1:] <= hi[:-1]))


def arrow_keys_unique(table: pa.Table) -> bool:
    """The same proof on an Arrow table (run, split, step) already in memory.

    DuckDB hashes the series names in parallel straight from the Arrow buffers (no copy),
    which is about a third cheaper than comparing the strings in Arrow.
    """
    if table.num_rows < 2:
        return True
    con = duckdb.connect()
    try:
        con.register("_keys", table)
        return keys_unique(con, "_keys", "run, split")
    finally:
        con.close()


def consecutive_series_unique(
    steps: pa.ChunkedArray, first: np.ndarray, last: np.ndarray, counts: np.ndarray
) -> bool:
    """The proof for rows in record order where each series holds one stretch of
    consecutive records, one row per record (a long CSV sorted by run).

    `first`, `last` and `counts` give each series' first and last record and its rows.
    When those stretches tile the records exactly, row i is record i, so a series'
    rows are a known slice, and keys are unique when steps rise within every slice:
    one pass over the steps, no hashing. False means "not proven", not "repeated".
    """
    order = np.argsort(first, kind="stable")
    first, last, counts = first[order], last[order], counts[order]
    if len(counts) == 0 or not np.array_equal(last - first + 1, counts):
        return False
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    if not np.array_equal(first, starts) or int(counts.sum()) != len(steps):
        return False
    falls, offset, previous = [], 0, None
    for chunk in steps.chunks:  # chunk by chunk: no 80 MB temporaries
        values = np.asarray(chunk)
        if not len(values):
            continue
        if chunk.null_count:
            return False
        where = np.flatnonzero(values[1:] <= values[:-1]) + 1 + offset
        if previous is not None and values[0] <= previous:
            where = np.concatenate(([offset], where))
        falls.append(where)
        previous, offset = values[-1], offset + len(values)
    # Steps may fall only where a new series starts.
    return bool(np.isin(np.concatenate(falls), starts).all()) if falls else True
