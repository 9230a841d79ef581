"""Reads that include inbox shards not yet ingested, so a live run shows at once.

The inbox is listed in Python (completed shards only), names already recorded in
`ingested_shards` are dropped (a crash between an ingest's commit and its file deletes
leaves such files), each remaining shard is checked once per process (a bad one goes to
the quarantine, see `store.shardcheck`), and the rest are read with `read_parquet`
beside the tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb

from store import shardcheck, shards
from store.schema import POINT_COLUMNS, RUN_FACT_COLUMNS

if TYPE_CHECKING:
    from store.core import Store

T = TypeVar("T")
POINT_COLS = ", ".join(POINT_COLUMNS)


@dataclass
class Pending:
    """The inbox shards a read must union with the tables."""

    point_files: list[str]
    fact_files: list[str]
    # The facts shards' rows (shard, project, run, facts), checked, in write order.
    fact_rows: list[shardcheck.FactRow] = field(default_factory=list)

    def merged_facts(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Facts per (project, run), later shards overriding earlier ones key by key."""
        return merge_fact_rows(self.fact_rows)


def merge_fact_rows(rows: list[shardcheck.FactRow]) -> dict[tuple[str, str], dict[str, Any]]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for _, project, run, facts in rows:
        merged.setdefault((project, run), {}).update(facts)
    return merged


def pending(store: Store, con: duckdb.DuckDBPyConnection) -> Pending:
    """Completed, checked inbox shards whose names are not yet recorded as ingested."""
    points = shards.list_shards(store.inbox_dir, shards.POINTS_PREFIX)
    facts = shards.list_shards(store.inbox_dir, shards.FACTS_PREFIX)
    if not points and not facts:
        shardcheck.note_served([])
        return Pending([], [])
    names = [p.name for p in points + facts]
    done = {
        row[0]
        for row in con.execute(
            "SELECT name FROM ingested_shards WHERE list_contains(?, name)", [names]
        ).fetchall()
    }
    good_points = shardcheck.checked_points(store.root, [p for p in points if p.name not in done])
    good_facts = shardcheck.checked_facts(store.root, [p for p in facts if p.name not in done])
    rows = [row for shard_rows in good_facts.values() for row in shard_rows]
    served = Pending([str(p) for p in good_points], [str(p) for p in good_facts], rows)
    shardcheck.note_served(served.point_files + served.fact_files)
    return served


def points_source(p: Pending) -> tuple[str, list[Any]]:
    """SQL (and its parameters) for all points: the table plus pending point shards."""
    if not p.point_files:
        return "points", []
    # A resumed run logs again the steps between its checkpoint and the crash: the
    # latest value of a key wins, over stored points and over earlier shards, as it
    # will once ingested.
    key = " AND ".join(f"s.{c} = q.{c}" for c in ("project", "run", "split", "step"))
    sql = f"""(WITH pend AS (
            SELECT {POINT_COLS} FROM read_parquet(?, union_by_name = true, filename = true,
                file_row_number = true)
            QUALIFY row_number() OVER (PARTITION BY project, run, split, step
                ORDER BY filename DESC, file_row_number DESC) = 1)
        SELECT {POINT_COLS} FROM points s ANTI JOIN pend q ON {key}
        UNION ALL SELECT {POINT_COLS} FROM pend)"""
    return sql, [p.point_files]


def register_pending_facts(con: duckdb.DuckDBPyConnection, p: Pending) -> str:
    """SQL for all runs' facts: `runs`, overridden by facts in pending shards."""
    if not p.fact_rows:
        return "runs"
    import pyarrow as pa

    merged = p.merged_facts()
    types = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "DOUBLE": pa.float64()}
    fields = [("project", pa.string()), ("run", pa.string())]
    fields += [(name, types[sql]) for name, sql in RUN_FACT_COLUMNS.items()]
    data = {
        "project": [k[0] for k in merged],
        "run": [k[1] for k in merged],
        **{name: [f.get(name) for f in merged.values()] for name in RUN_FACT_COLUMNS},
    }
    con.register("_pending_facts", pa.table(data, schema=pa.schema(fields)))
    facts = ", ".join(f"coalesce(f.{c}, r.{c}) AS {c}" for c in RUN_FACT_COLUMNS)
    rest = "r.n_points, r.last_step, r.last_loss, r.last_tokens, r.last_flops, "
    rest += (
        "coalesce(r.created_at, now()::TIMESTAMP) AS created_at, "
        "coalesce(r.updated_at, now()::TIMESTAMP) AS updated_at"
    )
    return (
        "(SELECT coalesce(r.project, f.project) AS project, coalesce(r.run, f.run) AS run, "
        f"{facts}, {rest} FROM runs r FULL OUTER JOIN _pending_facts f "
        "ON r.project = f.project AND r.run = f.run)"
    )


def with_inbox_retry(read: Callable[[], T], attempts: int = 5) -> T:
    """Run a read again when an ingest deleted a shard between listing and reading it,
    or when a shard whose footer passed its check turned out unreadable (it is then
    quarantined, and the read goes on without it)."""
    for attempt in range(attempts):
        try:
            return read()
        except duckdb.Error as err:
            text = str(err)
            lower = text.lower()
            gone = "no files found" in lower or "no such file" in lower or "cannot open" in lower
            if attempt == attempts - 1:
                raise
            if gone and isinstance(err, duckdb.IOException):
                continue
            # A page DuckDB cannot decode may not name its file: read the shards whole.
            suspects = shardcheck.shards_named_in(text) or shardcheck.last_served()
            if not shardcheck.recheck(p for p in suspects if Path(p).exists()):
                raise
    raise AssertionError("unreachable")
