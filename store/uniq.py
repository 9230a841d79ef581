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

    Adjacent strings are compared in Arrow; only block starts become Python labels.
    """
    import pyarrow.compute as pc

    n = table.num_rows
    if n < 2:
        return True
    run = table.column("run").combine_chunks()
    split = table.column("split").combine_chunks()
    step = table.column("step").to_numpy()
    changed = pc.or_(
        pc.not_equal(run.slice(1), run.slice(0, n - 1)),
        pc.not_equal(split.slice(1), split.slice(0, n - 1)),
    )
    change = np.asarray(changed.to_numpy(zero_copy_only=False), dtype=bool)
    starts = np.concatenate(([0], np.flatnonzero(change | (step[1:] <= step[:-1])) + 1))
    labels = [
        f"{r}\0{s}"
        for r, s in zip(run.take(starts).to_pylist(), split.take(starts).to_pylist(), strict=True)
    ]
    codes = {label: i for i, label in enumerate(dict.fromkeys(labels))}
    series = np.repeat(
        np.array([codes[label] for label in labels], dtype=np.int64),
        np.diff(np.concatenate((starts, [n]))),
    )
    return blocks_disjoint(series, step)
