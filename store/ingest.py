"""Move inbox shards into the tables: one transaction, idempotent, crash-safe.

Each shard's name is recorded in `ingested_shards` in the same transaction that adds its
rows; shard files are deleted only after the commit. A crash before the commit leaves
the shards to be ingested next time; a crash after it leaves files whose names are
already recorded, which are skipped (and removed) by the next ingest.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from store import quarantine, series, shardcheck, shardmeta, shards
from store.pending import merge_fact_rows
from store.schema import POINT_COLUMNS, RUN_FACT_COLUMNS
from store.sql import quote_list
from store.uniq import keys_unique
from store.writes import refresh_summaries, replace_points

if TYPE_CHECKING:
    from store.core import Store


# Above this many series in a batch, one UNION ALL branch per series costs more to plan
# than the name join it saves.
_MAX_UNION = 64


@dataclass
class IngestReport:
    """What one ingest did."""

    point_shards: int = 0
    fact_shards: int = 0
    points: int = 0
    skipped_shards: int = 0
    runs: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    # Shards moved to the quarantine instead (see `store.quarantine`).
    quarantined: list[str] = field(default_factory=list)
    # Temporaries of writers that died mid-write, removed (see `shards.sweep_temporaries`).
    swept: list[str] = field(default_factory=list)


def ingest_inbox(store: Store | str | os.PathLike[str] | None) -> IngestReport:
    """Ingest every completed inbox shard not yet recorded; delete them after commit.

    Each shard is checked first (`store.shardcheck`); a bad one is quarantined and the
    others are ingested. Should a shard that passed turn out unreadable midway, the
    transaction is rolled back, the batch's shards are read whole, the bad ones are
    quarantined, and the ingest runs once more without them. Temporaries left by
    writers that died mid-write (older than `shards.STALE_TEMP_S`) are removed first.
    """
    from store.core import as_store

    store = as_store(store)
    start = time.perf_counter()
    store.ensure()
    report = IngestReport(swept=shards.sweep_temporaries(store.inbox_dir))
    point_files = shards.list_shards(store.inbox_dir, shards.POINTS_PREFIX)
    fact_files = shards.list_shards(store.inbox_dir, shards.FACTS_PREFIX)
    if not point_files and not fact_files:
        return report
    usable: list[Path] = []  # the shards of the batch that passed their checks
    for attempt in range(2):
        try:
            _ingest_batch(store, report, point_files, fact_files, usable)
            break
        except duckdb.Error:
            if attempt or not shardcheck.recheck(usable):
                raise
    quarantined = quarantine.folder(store.root)
    report.quarantined = [
        p.name for p in point_files + fact_files if (quarantined / p.name).exists()
    ]
    for path in point_files + fact_files:
        if path.name not in report.quarantined:
            path.unlink(missing_ok=True)
    report.seconds = time.perf_counter() - start
    return report


def _ingest_batch(
    store: Store,
    report: IngestReport,
    point_files: list[Path],
    fact_files: list[Path],
    usable: list[Path],
) -> None:
    """One transaction: the shards not yet recorded that pass their checks (`usable`
    lists them), and their records. Shards already recorded are not checked again."""
    with store.transaction() as con:
        names = [p.name for p in point_files + fact_files]
        _forget_deleted(con, names)
        done = _already_ingested(con, names)
        report.skipped_shards = len(done)
        # Checked with pyarrow, not in this transaction: a bad file cannot abort it.
        footers = shardcheck.checked_points(
            store.root, [p for p in point_files if p.name not in done]
        )
        facts = shardcheck.checked_facts(store.root, [p for p in fact_files if p.name not in done])
        new_points, new_facts = list(footers), list(facts)
        usable[:] = new_points + new_facts
        touched: set[tuple[str, str]] = set()
        if new_points:
            by_name = {str(p): footers[p] for p in new_points}
            report.points = _ingest_points(con, new_points, by_name)
            touched |= set(con.execute("SELECT project, run FROM _touched").fetchall())
        if new_facts:
            touched |= _ingest_facts(con, [row for p in new_facts for row in facts[p]])
        _record(con, new_points, "points")
        _record(con, new_facts, "facts")
        report.point_shards, report.fact_shards = len(new_points), len(new_facts)
        report.runs = sorted(touched)


def _forget_deleted(con: duckdb.DuckDBPyConnection, present: list[str]) -> None:
    """Drop records of shards whose files are gone: they can never be ingested again.

    A record only guards a file that outlived its ingest (a crash before the delete), so
    records of files no longer in the inbox are dead weight once a grace period passed.
    """
    con.execute(
        "DELETE FROM ingested_shards WHERE ingested_at < now()::TIMESTAMP - INTERVAL 10 MINUTE "
        "AND NOT list_contains(?, name)",
        [present],
    )


def _already_ingested(con: duckdb.DuckDBPyConnection, names: list[str]) -> set[str]:
    rows = con.execute(
        "SELECT name FROM ingested_shards WHERE list_contains(?, name)", [names]
    ).fetchall()
    return {row[0] for row in rows}


def _ingest_points(
    con: duckdb.DuckDBPyConnection, files: list[Path], footers: dict[str, str | None]
) -> int:
    """Upsert the shards' rows straight from Parquet (last write wins within the batch)."""
    cols = ", ".join(POINT_COLUMNS)
    paths = [str(p) for p in files]
    names = quote_list(paths)
    con.execute(f"CREATE OR REPLACE TEMP VIEW _shards AS SELECT {cols} FROM read_parquet({names})")
    summary = shardmeta.summarise(con, paths, footers)
    if summary is not None:
        summary.create_keys(con, "_keys")
    else:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _keys AS SELECT project, run, split, max(family) "
            "AS family, max(sampling_ratio) AS sampling_ratio FROM _shards GROUP BY ALL"
        )
    series.assign(con, "_keys")
    # The footers prove most batches unique; else the scan's proof may; else dedupe.
    unique = (summary is not None and summary.unique) or keys_unique(
        con, "_shards", "project, run, split"
    )
    rows, ids = "SELECT * FROM _shards", False
    by_series = summary.files_by_series if summary is not None else None
    if unique and by_series and len(by_series) <= _MAX_UNION:
        # One series per shard (the writer's usual case): read each series' shards with
        # its id as a constant, which spares decoding and joining three names per row.
        rows, ids = _rows_by_series(con, by_series), True
    elif not unique:
        # A resumed run re-logged some steps: keep the latest value of each.
        rows = (
            f"SELECT {cols} FROM read_parquet({names}, filename = true, file_row_number = true) "
            "QUALIFY row_number() OVER (PARTITION BY project, run, split, step "
            "ORDER BY filename DESC, file_row_number DESC) = 1"
        )
    n = replace_points(con, rows, ids=ids)
    refresh_summaries(con)
    return n


def _rows_by_series(
    con: duckdb.DuckDBPyConnection, files_by_series: dict[tuple[str, str, str], list[str]]
) -> str:
    """SQL for the shards' rows as `point_values` rows, series ids from `_batch`."""
    ids = {
        (project, run, split): sid
        for sid, project, run, split in con.execute(
            "SELECT id, project, run, split FROM _batch"
        ).fetchall()
    }
    numbers = ", ".join(c for c in series.STAGED_COLUMNS if c != "series")
    return " UNION ALL ".join(
        f"SELECT {int(ids[key])}::INTEGER AS series, {numbers} FROM read_parquet({quote_list(files)})"
        for key, files in files_by_series.items()
    )


def _ingest_facts(
    con: duckdb.DuckDBPyConnection, rows: list[shardcheck.FactRow]
) -> set[tuple[str, str]]:
    merged = merge_fact_rows(rows)
    for (project, run), facts in merged.items():
        upsert_run_facts(con, project, run, facts)
    return set(merged)


def upsert_run_facts(
    con: duckdb.DuckDBPyConnection, project: str, run: str, facts: dict[str, Any]
) -> None:
    """Create the run if needed and set the given facts (others are left as they are)."""
    facts = {k: v for k, v in facts.items() if k in RUN_FACT_COLUMNS}
    con.execute("INSERT INTO projects (project) VALUES (?) ON CONFLICT DO NOTHING", [project])
    names = ["project", "run", *facts]
    marks = ", ".join("?" for _ in names)
    updates = ", ".join(f"{k} = excluded.{k}" for k in facts)
    update_clause = f"DO UPDATE SET {updates}, updated_at = now()" if facts else ("DO NOTHING")
    con.execute(
        f"INSERT INTO runs ({', '.join(names)}) VALUES ({marks}) "
        f"ON CONFLICT (project, run) {update_clause}",
        [project, run, *facts.values()],
    )


def _record(con: duckdb.DuckDBPyConnection, files: list[Path], kind: str) -> None:
    if not files:
        return
    con.execute(
        "INSERT INTO ingested_shards (name, kind) SELECT unnest(?), ? ON CONFLICT DO NOTHING",
        [[p.name for p in files], kind],
    )
