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
    "seed": "BIGINT",
    "code_version": "VARCHAR",
    "status": "VARCHAR",
}
JSON_FACTS = ("schedule", "config", "source")
RUN_STATUSES = ("running", "finished", "failed", "imported")

# Summary of each run's points, kept up to date by every write so listing runs is cheap.
RUN_SUMMARY_COLUMNS: dict[str, str] = {
    "n_points": "BIGINT",
    "last_step": "BIGINT",
    "last_loss": "DOUBLE",
    "last_tokens": "DOUBLE",
    "last_flops": "DOUBLE",
}


def _columns(spec: dict[str, str]) -> str:
    return ",\n  ".join(f"{name} {sql_type}" for name, sql_type in spec.items())


_V1 = [
    """CREATE TABLE projects (
  project VARCHAR PRIMARY KEY,
  description VARCHAR,
  created_at TIMESTAMP DEFAULT current_timestamp
)""",
    f"""CREATE TABLE runs (
  project VARCHAR NOT NULL,
  run VARCHAR NOT NULL,
  {_columns(RUN_FACT_COLUMNS)},
  {_columns(RUN_SUMMARY_COLUMNS)},
  created_at TIMESTAMP DEFAULT current_timestamp,
  updated_at TIMESTAMP DEFAULT current_timestamp,
  PRIMARY KEY (project, run)
)""",
    # No primary key on points: an ART index over millions of rows makes bulk ingest slow;
    # every write path deletes the keys it replaces first, which keeps (project, run,
    # split, step) unique.
    f"""CREATE TABLE points (
  {_columns(POINT_COLUMNS)}
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

# v2: curve tiles (see store.tiles), built for the points already stored.
_V2 = [
    tiles.DDL,
    f"INSERT INTO curve_tiles ({', '.join(tiles.TILE_COLUMNS)}) "
    f"SELECT {', '.join(tiles.TILE_COLUMNS)} FROM ({tiles.aggregate_sql('points')})",
]

# Append new versions here; never edit one that has shipped.
MIGRATIONS: list[list[str]] = [_V1, _V2]
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
