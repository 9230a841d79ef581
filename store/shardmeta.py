"""What a point shard holds, written into its Parquet footer by the writer.

An `InboxWriter` knows its shard's series and whether each one's steps strictly rise, so
it records that (per split: family, sampling ratio, first and last step, whether rising)
as key-value metadata. Ingest then names the batch's series and proves its keys unique
from 1,000 footers instead of scanning 10 million rows twice. Shards without the
metadata (or whose series the writer could not vouch for) take the scanning path.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

KEY = "scalinglab.series"
VERSION = 1


def describe(table: pa.Table, project: str, run: str) -> bytes | None:
    """The footer entry for a shard of run `run` (None when a split mixes families).

    On the writer's hot path: a shard of one split without family facts (the usual
    case) costs a few microseconds.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    if n == 0:
        return None
    steps = np.concatenate([np.asarray(c) for c in table.column("step").chunks])
    split_column = table.column("split")
    splits = pc.unique(split_column).to_pylist()
    plain = all(table.column(f).null_count == n for f in ("family", "sampling_ratio"))
    groups = [(splits[0], table, steps)]
    if len(splits) > 1:
        codes = pc.index_in(split_column, value_set=pa.array(splits))
        codes = np.concatenate([np.asarray(c) for c in codes.chunks])
        groups = [
            (split, table.filter(pa.array(codes == i)), steps[codes == i])
            for i, split in enumerate(splits)
        ]
    series = []
    for split, own, own_steps in groups:
        facts: dict[str, Any] = {"family": None, "sampling_ratio": None}
        for fact in facts if not plain else ():
            values = pc.unique(pc.drop_null(own.column(fact))).to_pylist()
            if len(values) > 1:
                return None
            facts[fact] = values[0] if values else None
        rising = bool(np.all(own_steps[1:] > own_steps[:-1]))
        lo, hi = (own_steps[0], own_steps[-1]) if rising else (own_steps.min(), own_steps.max())
        series.append(
            {"split": split, **facts, "first": int(lo), "last": int(hi), "rising": rising}
        )
    return json.dumps({"v": VERSION, "project": project, "run": run, "series": series}).encode()


@dataclass
class BatchSummary:
    """The series of a batch of shards and whether its (series, step) keys are unique."""

    keys: list[tuple[Any, ...]]  # project, run, split, family, sampling_ratio
    unique: bool
    # The files of each (project, run, split) when every file holds one series only.
    files_by_series: dict[tuple[str, str, str], list[str]] | None = None

    def create_keys(self, con: duckdb.DuckDBPyConnection, table: str) -> None:
        """Temp table `table` (project, run, split, family, sampling_ratio) of the keys."""
        columns = list(zip(*self.keys, strict=True)) if self.keys else [()] * 5
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT unnest(?::VARCHAR[]) AS project, "
            "unnest(?::VARCHAR[]) AS run, unnest(?::VARCHAR[]) AS split, "
            "unnest(?::VARCHAR[]) AS family, unnest(?::DOUBLE[]) AS sampling_ratio",
            [list(c) for c in columns],
        )


def summarise(
    con: duckdb.DuckDBPyConnection, files: list[str], footers: dict[str, str | None] | None = None
) -> BatchSummary | None:
    """From the footers of `files` (in write order); None unless every shard has one.

    `footers` (file -> entry, as `store.shardcheck` read them) spares reading them again.
    """
    if footers is not None:
        rows = [(name, footers[name]) for name in files if footers.get(name) is not None]
    else:
        rows = con.execute(
            "SELECT file_name, decode(value) FROM parquet_kv_metadata(?) WHERE decode(key) = ?",
            [files, KEY],
        ).fetchall()
    if len(rows) != len(files):
        return None
    order = {name: i for i, name in enumerate(files)}
    keys: dict[tuple[str, str, str], list[Any]] = {}
    blocks: dict[tuple[str, str, str], list[tuple[int, int]]] = {}
    unique = True
    by_series: dict[tuple[str, str, str], list[str]] | None = {}
    for name, text in sorted(rows, key=lambda row: order.get(row[0], -1)):
        meta = json.loads(text)
        if meta.get("v") != VERSION:
            return None
        if by_series is not None and len(meta["series"]) == 1:
            key = (meta["project"], meta["run"], meta["series"][0]["split"])
            by_series.setdefault(key, []).append(name)
        else:
            by_series = None
        for s in meta["series"]:
            key = (meta["project"], meta["run"], s["split"])
            facts = keys.setdefault(key, [None, None])
            # Later shards win, as later facts do everywhere else.
            facts[0] = s["family"] if s["family"] is not None else facts[0]
            facts[1] = s["sampling_ratio"] if s["sampling_ratio"] is not None else facts[1]
            unique = unique and s["rising"]
            blocks.setdefault(key, []).append((s["first"], s["last"]))
    if unique:
        for spans in blocks.values():
            spans.sort()
            if any(nxt[0] <= prev[1] for prev, nxt in itertools.pairwise(spans)):
                unique = False
                break
    return BatchSummary([(*key, *facts) for key, facts in keys.items()], unique, by_series)
