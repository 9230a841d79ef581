"""Table definitions and forward migrations, plus the canonical column lists.

Each migration is a list of statements applied in one transaction; `schema_version`
records every version applied, so opening an older store upgrades it in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

from store import tiles

# Point-level columns in the canonical schema, in storage order (with their SQL types).
POINT_COLUMNS: dict[str, str] = {
    "project": "VARCHAR",
    "run": "VARCHAR",
    "split": "VARCHAR",
    "step": "BIGINT",
    "tokens": "DOUBLE",
    "flops": "DOUBLE",
    "lr": "DOUBLE",
    "loss": "DOUBLE",
    "family": "VARCHAR",
    "sampling_ratio": "DOUBLE",
}

# A point as writers and importers hand it over: the point columns but the project.
POINT_FIELDS = tuple(c for c in POINT_COLUMNS if c != "project")

# What `point_values` stores per point: the series id, then the numbers.
POINT_VALUE_COLUMNS: dict[str, str] = {
    "series": "INTEGER NOT NULL",
    "step": "BIGINT NOT NULL",
    "tokens": "DOUBLE",
    "flops": "DOUBLE",
    "lr": "DOUBLE",
    "loss": "DOUBLE",
}

# One row per (project, run, split) curve, with the facts that belong to the curve.
SERIES_COLUMNS: dict[str, str] = {
    "id": "INTEGER DEFAULT nextval('series_id_seq')",
    "project": "VARCHAR NOT NULL",
    "run": "VARCHAR NOT NULL",
    "split": "VARCHAR NOT NULL",
    "family": "VARCHAR",
    "sampling_ratio": "DOUBLE",
    # The highest step stored: a batch starting above it cannot replace any point.
    "last_step": "BIGINT",
}

# Since v3 `points` is this view: the canonical point columns, as in v1's table.
POINTS_VIEW = """CREATE VIEW points AS
SELECT s.project, s.run, s.split, v.step, v.tokens, v.flops, v.lr, v.loss,
    s.family, s.sampling_ratio
FROM point_values v JOIN series s ON v.series = s.id"""

# Per-run facts a writer or importer may set (besides status and the summary columns).
RUN_FACT_COLUMNS: dict[str, str] = {
    "params": "BIGINT",
    "params_non_embedding": "BIGINT",
    "encoder_params": "BIGINT",
    "decoder_params": "BIGINT",
    "family": "VARCHAR",
    "sampling_ratio": "DOUBLE",
    "schedule": "VARCHAR",
    "config": "VARCHAR",
    "source": "VARCHAR",
    "entropy": "DOUBLE",
    # distinct tokens in the training data (Muennighoff et al.'s U_D), for repeated epochs
    "unique_tokens": "BIGINT",
    "seed": "BIGINT",
    "code_version": "VARCHAR",
    "status": "VARCHAR",
}
JSON_FACTS = ("schedule", "config", "source")
# interrupted: stopped by a signal, or found dead by trainers.runlock.mark_stale
RUN_STATUSES = ("running", "finished", "failed", "interrupted", "imported")

# Summary of each run's points, kept up to date by every write so listing runs is cheap.
RUN_SUMMARY_COLUMNS: dict[str, str] = {
    "n_points": "BIGINT",
    "last_step": "BIGINT",
    "last_loss": "DOUBLE",
    "last_tokens": "DOUBLE",
    "last_flops": "DOUBLE",
}


# Migrations are frozen: each spells its columns out, so editing a column list above
# never rewrites what an old store was migrated with. A new column is a new migration.
_V1 = [
    """CREATE TABLE projects (
  project VARCHAR PRIMARY KEY,
  description VARCHAR,
  created_at TIMESTAMP DEFAULT current_timestamp
)""",
    """CREATE TABLE runs (
  project VARCHAR NOT NULL,
  run VARCHAR NOT NULL,
  params BIGINT,
  params_non_embedding BIGINT,
  encoder_params BIGINT,
  decoder_params BIGINT,
  family VARCHAR,
  sampling_ratio DOUBLE,
  schedule VARCHAR,
  config VARCHAR,
  source VARCHAR,
  entropy DOUBLE,
  seed BIGINT,
  code_version VARCHAR,
  status VARCHAR,
  n_points BIGINT,
  last_step BIGINT,
  last_loss DOUBLE,
  last_tokens DOUBLE,
  last_flops DOUBLE,
  created_at TIMESTAMP DEFAULT current_timestamp,
  updated_at TIMESTAMP DEFAULT current_timestamp,
  PRIMARY KEY (project, run)
)""",
    # No primary key on points: an ART index over millions of rows makes bulk ingest slow;
    # every write path deletes the keys it replaces first, which keeps (project, run,
    # split, step) unique.
    """CREATE TABLE points (
  project VARCHAR,
  run VARCHAR,
  split VARCHAR,
  step BIGINT,
  tokens DOUBLE,
  flops DOUBLE,
  lr DOUBLE,
  loss DOUBLE,
  family VARCHAR,
  sampling_ratio DOUBLE
)""",
    "CREATE SEQUENCE fits_id_seq START 1",
    """CREATE TABLE fits (
  id BIGINT PRIMARY KEY DEFAULT nextval('fits_id_seq'),
  project VARCHAR NOT NULL,
  law VARCHAR NOT NULL,
  result_json VARCHAR NOT NULL,
  selection VARCHAR,
  data_hash VARCHAR,
  options VARCHAR,
  code_version VARCHAR,
  job_id BIGINT,
  created_at TIMESTAMP DEFAULT current_timestamp
)""",
    "CREATE SEQUENCE jobs_id_seq START 1",
    """CREATE TABLE jobs (
  id BIGINT PRIMARY KEY DEFAULT nextval('jobs_id_seq'),
  name VARCHAR NOT NULL,
  project VARCHAR NOT NULL,
  law VARCHAR NOT NULL,
  selection VARCHAR,
  options VARCHAR,
  schedule VARCHAR NOT NULL,
  paused BOOLEAN DEFAULT false,
  status VARCHAR DEFAULT 'idle',
  last_run_at TIMESTAMP,
  next_run_at TIMESTAMP,
  last_duration_s DOUBLE,
  last_error VARCHAR,
  last_data_version VARCHAR,
  last_fit_id BIGINT,
  created_at TIMESTAMP DEFAULT current_timestamp
)""",
    """CREATE TABLE ingested_shards (
  name VARCHAR PRIMARY KEY,
  kind VARCHAR,
  n_rows BIGINT,
  ingested_at TIMESTAMP DEFAULT current_timestamp
)""",
    """CREATE TABLE uploads (
  sha256 VARCHAR NOT NULL,
  project VARCHAR NOT NULL,
  options VARCHAR NOT NULL,
  original_name VARCHAR,
  format VARCHAR,
  path VARCHAR,
  n_runs BIGINT,
  n_points BIGINT,
  imported_at TIMESTAMP DEFAULT current_timestamp,
  PRIMARY KEY (sha256, project, options)
)""",
]

# v2: curve tiles keyed by (project, run, split), built for the points already stored.
# Frozen text: later versions of `store.tiles` must not change what v2 did.
_V2_PICKS = (
    "count(*) AS n, min({x}) AS f_x, arg_min(step, {x}) AS f_step, "
    "arg_min(loss, {x}) AS f_loss, max({x}) AS l_x, arg_max(step, {x}) AS l_step, "
    "arg_max(loss, {x}) AS l_loss, arg_min({x}, loss) AS lo_x, arg_min(step, loss) AS lo_step, "
    "min(loss) AS lo_loss, arg_max({x}, loss) AS hi_x, arg_max(step, loss) AS hi_step, "
    "max(loss) AS hi_loss"
)
_V2 = [
    """CREATE TABLE curve_tiles (
  project VARCHAR NOT NULL, run VARCHAR NOT NULL, split VARCHAR NOT NULL,
  xkind VARCHAR NOT NULL, tile INTEGER NOT NULL, n BIGINT NOT NULL,
  f_x DOUBLE, f_step BIGINT, f_loss DOUBLE, l_x DOUBLE, l_step BIGINT, l_loss DOUBLE,
  lo_x DOUBLE, lo_step BIGINT, lo_loss DOUBLE, hi_x DOUBLE, hi_step BIGINT, hi_loss DOUBLE
)""",
    "INSERT INTO curve_tiles "
    + " UNION ALL ".join(
        f"SELECT project, run, split, '{x}' AS xkind, "
        f"CAST(floor(32 * log2(1 + greatest({x}, 0))) AS INTEGER) AS tile, "
        f"{_V2_PICKS.format(x=x)} FROM points WHERE loss IS NOT NULL AND {x} IS NOT NULL "
        "GROUP BY project, run, split, tile"
        for x in ("step", "tokens", "flops")
    ),
]

# v3: each (project, run, split) series gets an integer id (`series`); the numbers live
# in `point_values` keyed by it, and `points` becomes a view with the v1 columns. Bulk
# writes then append six numeric columns per point instead of three strings as well
# (about half of a 10 M-point ingest went to storing those strings). A point's family
# and sampling ratio belong to its series: every writer sets them per series.
_V3 = [
    "CREATE SEQUENCE series_id_seq START 1",
    """CREATE TABLE series (
  id INTEGER DEFAULT nextval('series_id_seq'),
  project VARCHAR NOT NULL,
  run VARCHAR NOT NULL,
  split VARCHAR NOT NULL,
  family VARCHAR,
  sampling_ratio DOUBLE,
  last_step BIGINT,
  PRIMARY KEY (id),
  UNIQUE (project, run, split)
)""",
    """CREATE TABLE point_values (
  series INTEGER NOT NULL,
  step BIGINT NOT NULL,
  tokens DOUBLE,
  flops DOUBLE,
  lr DOUBLE,
  loss DOUBLE
)""",
    "INSERT INTO series (project, run, split, family, sampling_ratio, last_step) "
    "SELECT project, run, coalesce(split, 'train') AS split, "
    "arg_max(family, step) FILTER (WHERE family IS NOT NULL), "
    "arg_max(sampling_ratio, step) FILTER (WHERE sampling_ratio IS NOT NULL), max(step) "
    "FROM points GROUP BY ALL ORDER BY ALL",
    "INSERT INTO point_values SELECT s.id, p.step, p.tokens, p.flops, p.lr, p.loss "
    "FROM points p JOIN series s ON s.project = p.project AND s.run = p.run "
    "AND s.split = coalesce(p.split, 'train')",
    "DROP TABLE points",
    POINTS_VIEW,
    "DROP TABLE curve_tiles",
    tiles.DDL,
    f"INSERT INTO curve_tiles ({', '.join(tiles.TILE_COLUMNS)}) "
    f"SELECT {', '.join(tiles.TILE_COLUMNS)} FROM ({tiles.aggregate_sql('point_values')})",
]

# v4: run facts beyond the canonical ones: a file's extra columns kept at import (Gadre
# et al.'s train_dataset, Gordon et al.'s Lang), `scalinglab runs set`, a facts CSV, a
# replicate's index. One row per (project, run, name); `value` is JSON (a number or a
# text). Frozen text (see `store.runfacts`).
_V4 = [
    """CREATE TABLE run_facts (
  project VARCHAR NOT NULL,
  run VARCHAR NOT NULL,
  name VARCHAR NOT NULL,
  value VARCHAR,
  PRIMARY KEY (project, run, name)
)""",
]

# v5: the unique-token count as a run fact (the data_constrained law's U_D); who made each
# saved fit, job and upload (the signed-in user, NULL when sign-in is off); and an audit
# table of who did what. Frozen text.
_V5 = [
    "ALTER TABLE runs ADD COLUMN unique_tokens BIGINT",
    "ALTER TABLE fits ADD COLUMN created_by VARCHAR",
    "ALTER TABLE jobs ADD COLUMN created_by VARCHAR",
    "ALTER TABLE uploads ADD COLUMN imported_by VARCHAR",
    "CREATE SEQUENCE audit_id_seq START 1",
    """CREATE TABLE audit (
  id BIGINT PRIMARY KEY DEFAULT nextval('audit_id_seq'),
  occurred_at TIMESTAMP DEFAULT current_timestamp,
  actor VARCHAR,
  role VARCHAR,
  action VARCHAR NOT NULL,
  project VARCHAR,
  target VARCHAR,
  detail VARCHAR
)""",
]

# Append new versions here; never edit one that has shipped.
MIGRATIONS: list[list[str]] = [_V1, _V2, _V3, _V4, _V5]
CURRENT_VERSION = len(MIGRATIONS)


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """The highest version applied to this database (0 for a fresh file)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_name = 'schema_version'"
    ).fetchone()
    if not exists or exists[0] == 0:
        return 0
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply every missing migration, each in its own transaction; return the version."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER NOT NULL, applied_at TIMESTAMP DEFAULT current_timestamp)"
    )
    version = current_version(con)
    for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in statements:
                con.execute(statement)
            con.execute("INSERT INTO schema_version (version) VALUES (?)", [number])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        version = number
    return version
