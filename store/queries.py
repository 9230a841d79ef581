"""Read queries: projects, runs with their summaries, long point frames, export, versions.

Every read includes inbox shards not yet ingested (see `store.pending`). Frames are
pandas DataFrames.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.errors import BadInputError
from store.pending import (
    pending,
    points_source,
    register_pending_facts,
    with_inbox_retry,
)
from store.schema import RUN_FACT_COLUMNS, RUN_SUMMARY_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from store.core import Store

# Run facts carried onto every point of the long frame (JSON config/source stay on runs).
FRAME_RUN_FACTS = (
    "params",
    "params_non_embedding",
    "encoder_params",
    "decoder_params",
    "entropy",
    "schedule",
    "status",
)
_LAST = """coalesce(
        arg_max(loss, step) FILTER (WHERE split = 'train' AND loss IS NOT NULL),
        arg_max(loss, step) FILTER (WHERE loss IS NOT NULL)) AS last_loss,
    arg_max(tokens, step) FILTER (WHERE tokens IS NOT NULL) AS last_tokens,
    arg_max(flops, step) FILTER (WHERE flops IS NOT NULL) AS last_flops"""


def _where(
    project: str | None,
    runs: Sequence[str] | None,
    splits: Sequence[str] | None = None,
    alias: str = "",
) -> tuple[str, list[Any]]:
    """A WHERE clause (with parameters) selecting a project, runs and splits."""
    clauses: list[str] = []
    params: list[Any] = []
    if project is not None:
        clauses.append(f"{alias}project = ?")
        params.append(project)
    if runs is not None:
        clauses.append(f"list_contains(?, {alias}run)")
        params.append(list(runs))
    if splits is not None:
        clauses.append(f"list_contains(?, {alias}split)")
        params.append(list(splits))
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def list_projects(store: Store) -> list[str]:
    """Names of all projects, including ones that so far exist only in the inbox."""
    frame = list_runs(store)
    with store.connect(read_only=True) as con:
        named = {row[0] for row in con.execute("SELECT project FROM projects").fetchall()}
    return sorted(named | set(frame["project"]))


def list_runs(store: Store, project: str | None = None) -> pd.DataFrame:
    """One row per run: its facts plus n_points, last_step, last_loss/tokens/flops."""

    def read() -> pd.DataFrame:
        with store.connect(read_only=True) as con:
            p = pending(store, con)
            runs_sql = register_pending_facts(con, p)
            where, params = _where(project, None, alias="x.")
            facts = ", ".join(f"r.{c}" for c in RUN_FACT_COLUMNS)
            if not p.point_files:
                summary = ", ".join(
                    f"coalesce(r.{c}, 0) AS {c}" if c == "n_points" else f"r.{c}"
                    for c in RUN_SUMMARY_COLUMNS
                )
                sql = (
                    f"SELECT * FROM (SELECT r.project, r.run, {facts}, {summary}, "
                    f"r.created_at, r.updated_at FROM {runs_sql} r) x {where} "
                    "ORDER BY x.project, x.run"
                )
                return con.execute(sql, params).df()
            sql = f"""
            WITH pa AS (
                SELECT project, run, count(*) AS n_points, max(step) AS last_step, {_LAST}
                FROM read_parquet(?, union_by_name = true) GROUP BY project, run)
            SELECT * FROM (
                SELECT coalesce(r.project, pa.project) AS project,
                    coalesce(r.run, pa.run) AS run, {facts},
                    coalesce(r.n_points, 0) + coalesce(pa.n_points, 0) AS n_points,
                    greatest(r.last_step, pa.last_step) AS last_step,
                    {_newer("last_loss")}, {_newer("last_tokens")}, {_newer("last_flops")},
                    coalesce(r.created_at, now()::TIMESTAMP) AS created_at,
                    coalesce(r.updated_at, now()::TIMESTAMP) AS updated_at
                FROM {runs_sql} r FULL OUTER JOIN pa
                    ON r.project = pa.project AND r.run = pa.run) x
            {where} ORDER BY x.project, x.run"""
            return con.execute(sql, [p.point_files, *params]).df()

    return with_inbox_retry(read)


def _newer(col: str) -> str:
    """The pending value when the pending points reach at least the stored last step."""
    return (
        f"CASE WHEN pa.last_step IS NOT NULL AND (r.last_step IS NULL OR "
        f"pa.last_step >= r.last_step) THEN coalesce(pa.{col}, r.{col}) "
        f"ELSE r.{col} END AS {col}"
    )


def points_sql(
    store: Store,
    con: Any,
    project: str | None,
    runs: Sequence[str] | None,
    splits: Sequence[str] | None,
) -> tuple[str, list[Any]]:
    """SQL for the canonical long frame (points joined with their run's facts)."""
    p = pending(store, con)
    source, source_params = points_source(p)
    runs_sql = register_pending_facts(con, p)
    where, params = _where(project, runs, splits, alias="p.")
    facts = ", ".join(f"r.{c}" for c in FRAME_RUN_FACTS)
    sql = f"""
        SELECT p.project, p.run, p.split, p.step, p.tokens, p.flops, p.lr, p.loss,
            coalesce(p.family, r.family) AS family,
            coalesce(p.sampling_ratio, r.sampling_ratio) AS sampling_ratio, {facts}
        FROM {source} p LEFT JOIN {runs_sql} r ON p.project = r.project AND p.run = r.run
        {where}
        ORDER BY p.project, p.run, p.split, p.step"""
    return sql, [*source_params, *params]


def points_frame(
    store: Store,
    project: str | None = None,
    runs: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
) -> pd.DataFrame:
    """All selected points in the canonical long schema, with per-run facts joined."""

    def read() -> pd.DataFrame:
        with store.connect(read_only=True) as con:
            sql, params = points_sql(store, con, project, runs, splits)
            return con.execute(sql, params).df()

    return with_inbox_retry(read)


def export(
    store: Store,
    out: str | os.PathLike[str],
    project: str | None = None,
    runs: Sequence[str] | None = None,
) -> int:
    """Write the selected points (long format) to a .csv or .parquet file; return rows."""
    out = Path(out)
    kind = out.suffix.lower().lstrip(".")
    if kind not in ("csv", "parquet"):
        raise BadInputError("export writes .csv or .parquet files", file=str(out))
    if project is not None:
        # An unknown project is a typo, not an empty selection: no file is written.
        known = list_projects(store)
        if project not in known:
            names = ", ".join(repr(name) for name in known) or "none yet"
            raise BadInputError(f"unknown project {project!r}; known projects: {names}")
    out.parent.mkdir(parents=True, exist_ok=True)

    def write() -> int:
        with store.connect(read_only=True) as con:
            sql, params = points_sql(store, con, project, runs, None)
            rel = con.sql(sql, params=params)
            tmp = out.with_name(f".{out.name}.tmp")
            if kind == "csv":
                rel.write_csv(str(tmp))
            else:
                rel.write_parquet(str(tmp))
            os.replace(tmp, out)
            row = con.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()
            return int(row[0]) if row else 0

    return with_inbox_retry(write)


def data_version(store: Store, project: str) -> str:
    """A short value that changes whenever the project's points or runs change."""

    def read() -> str:
        with store.connect(read_only=True) as con:
            row = con.execute(
                "SELECT count(*), coalesce(sum(n_points), 0), coalesce(max(last_step), -1), "
                "CAST(max(updated_at) AS VARCHAR) FROM runs WHERE project = ?",
                [project],
            ).fetchone()
            p = pending(store, con)
            # Only this project's pending shards count: another project's live runs
            # must not wake this project's on-new-data jobs.
            mine = sorted({shard for shard, owner, _, _ in p.fact_rows if owner == project})
            if p.point_files:
                rows = con.execute(
                    "SELECT DISTINCT filename FROM read_parquet(?, union_by_name = true, "
                    "filename = true) WHERE project = ?",
                    [p.point_files, project],
                ).fetchall()
                mine += [r[0] for r in rows]
        digest = hashlib.sha256("\n".join(sorted(mine)).encode()).hexdigest()[:12]
        return f"{row[0]}:{row[1]}:{row[2]}:{row[3]}:{digest}" if row else digest

    return with_inbox_retry(read)


def curve(
    store: Store,
    project: str,
    runs: Sequence[str],
    *,
    x: str = "step",
    max_points: int = 2000,
    splits: Sequence[str] | None = None,
    spacing: str = "log",
) -> pd.DataFrame:
    """A plot-ready curve: at most `max_points` points per (run, split), downsampled in
    DuckDB (see `store.downsample`); columns run, split, step, [x,] loss."""
    from store.downsample import downsampled_curve

    return downsampled_curve(
        store, project, runs, x=x, max_points=max_points, splits=splits, spacing=spacing
    )
