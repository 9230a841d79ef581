"""What a file says beyond the canonical columns: extra run facts, and replicates.

Run facts: a column the mapping leaves unused whose value is the same on every row of a
run (Gadre et al.'s ``train_dataset``, Gordon et al.'s ``Lang``) is kept as a fact of
that run (`store.runfacts`), so fits can filter and group by it. A column that varies
within a run is a per-point quantity the schema has no place for; it is named in a
warning and not kept.

Replicates (``replicates="keep"``): rows whose (run, split, step) repeats and that are
identical in every column but the losses are repeated runs (seeds) of one
configuration. The k-th repeat (k >= 2) goes to run ``<run> rep<k>``, a replicate of the
run with its facts plus ``replicate = k`` and ``replicate_of = <run>`` (the first has
``replicate = 1``), so every row is kept, the fits use every replicate and the bootstrap
resamples them as runs. Repeats that differ elsewhere are still refused (they are other
runs, e.g. an LR sweep: map the columns that tell them apart to run).
"""

from __future__ import annotations

import duckdb

from store.importers.aliases import normalise
from store.importers.scan import ScannedFile
from store.runfacts import RESERVED, parse_value
from store.sql import quote_ident

REPLICATE_CHOICES = ("refuse", "keep")


def _raw_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [row[0] for row in con.execute("DESCRIBE _raw").fetchall()]


def extra_facts(
    con: duckdb.DuckDBPyConnection, columns: list[str]
) -> tuple[list[tuple[str, str, object]], list[str]]:
    """(run, name, value) for each unused column constant within every run, and the
    warnings for the columns that are not."""
    present = set(_raw_columns(con))
    rows: list[tuple[str, str, object]] = []
    warnings: list[str] = []
    varying = []
    for column in columns:
        if column not in present or column.strip() in RESERVED or not column.strip():
            continue
        col = f"CAST(r.{quote_ident(column)} AS VARCHAR)"
        stats = con.execute(
            f"SELECT p.run, count(DISTINCT {col}) AS n, any_value({col}) AS v "
            "FROM _points p JOIN _raw r ON r.rowid = p._rec GROUP BY p.run"
        ).fetchall()
        if any(n > 1 for _, n, _ in stats):
            varying.append(column)
            continue
        rows += [(str(run), column.strip(), parse_value(v)) for run, _, v in stats if v is not None]
    if varying:
        shown = ", ".join(varying[:6]) + (
            f" and {len(varying) - 6} more" if len(varying) > 6 else ""
        )
        warnings.append(f"column(s) {shown} vary within a run: not kept as run facts")
    return rows, warnings


def keep_replicates(
    con: duckdb.DuckDBPyConnection, scanned: ScannedFile, mapping: dict[str, str]
) -> tuple[list[tuple[str, str, object]], list[str]]:
    """Move repeated rows (identical but for the losses) to replicate runs; returns their
    facts and a warning saying how many rows became replicates."""
    loss_like = {src for src, canon in mapping.items() if canon == "loss"}
    loss_like |= {c for c in scanned.header if "loss" in normalise(c)}
    others = [c for c in _raw_columns(con) if c not in loss_like and c != "_k"]
    same = (
        "struct_pack("
        + ", ".join(f"c{i} := r.{quote_ident(c)}" for i, c in enumerate(others))
        + ")"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _rep_keys AS SELECT p.run, p.split, p.step "
        "FROM _points p JOIN _raw r ON r.rowid = p._rec GROUP BY p.run, p.split, p.step "
        f"HAVING count(*) > 1 AND count(DISTINCT {same}) = 1"
    ).fetchall()
    (n_keys,) = con.execute("SELECT count(*) FROM _rep_keys").fetchall()[0]
    if not n_keys:
        return [], []
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _with_reps AS SELECT * EXCLUDE (_k, _rep) REPLACE "
        "(CASE WHEN _rep AND _k > 1 THEN run || ' rep' || _k ELSE run END AS run) FROM ("
        "SELECT p.*, row_number() OVER (PARTITION BY p.run, p.split, p.step ORDER BY p._rec) "
        "AS _k, k.run IS NOT NULL AS _rep FROM _points p LEFT JOIN _rep_keys k "
        "ON p.run = k.run AND p.split = k.split AND p.step = k.step) ORDER BY _rec"
    ).fetchall()
    pairs = con.execute(
        "SELECT DISTINCT regexp_replace(run, ' rep[0-9]+$', '') AS base, run, "
        "CAST(regexp_extract(run, ' rep([0-9]+)$', 1) AS BIGINT) AS k FROM _with_reps "
        "WHERE run NOT IN (SELECT run FROM _points) ORDER BY base, k"
    ).fetchall()
    (moved,) = con.execute(
        "SELECT count(*) FROM _with_reps WHERE run NOT IN (SELECT run FROM _points)"
    ).fetchall()[0]
    con.execute("CREATE OR REPLACE TEMP VIEW _points AS SELECT * FROM _with_reps").fetchall()
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _rep_runs AS SELECT * FROM (VALUES "
        + ", ".join("(?, ?)" for _ in pairs)
        + ") t(base, rep)",
        [v for base, rep, _ in pairs for v in (base, rep)],
    ).fetchall()
    con.execute(
        "INSERT INTO _runs SELECT r.* REPLACE (x.rep AS run) FROM _runs r "
        "JOIN _rep_runs x ON r.run = x.base"
    ).fetchall()
    facts: list[tuple[str, str, object]] = []
    for base in dict.fromkeys(base for base, _, _ in pairs):
        facts.append((base, "replicate", 1))
    for base, rep, k in pairs:
        facts += [(rep, "replicate", int(k)), (rep, "replicate_of", base)]
    n_runs = len({base for base, _, _ in pairs})
    return facts, [
        f"{moved} repeated row(s) of {n_runs} run(s) kept as replicates "
        "(runs '<run> rep<k>', facts replicate and replicate_of)"
    ]
