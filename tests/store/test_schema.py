"""The store folder, its location rules, the schema and forward migrations."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import Store, schema
from store.paths import ENV_VAR, resolve_root


def test_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "from-env"))
    assert resolve_root(tmp_path / "arg") == (tmp_path / "arg").resolve()
    assert resolve_root(None) == (tmp_path / "from-env").resolve()
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_root(None) == (tmp_path / "home" / ".scalinglab").resolve()


def test_fresh_store_has_every_table(store: Store) -> None:
    assert store.schema_version() == schema.CURRENT_VERSION
    assert store.inbox_dir.is_dir() and store.uploads_dir.is_dir()
    with store.connect(read_only=True) as con:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
    assert {
        "schema_version",
        "projects",
        "runs",
        "points",
        "fits",
        "jobs",
        "ingested_shards",
        "uploads",
    } <= tables


def test_forward_migration_applies_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = ["ALTER TABLE runs ADD COLUMN note VARCHAR"]
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, extra])
    new = len(schema.MIGRATIONS)
    with store.connect() as con:
        assert schema.migrate(con) == new
        assert schema.migrate(con) == new  # already there: nothing re-applied
        versions = con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        cols = {r[0] for r in con.execute("DESCRIBE runs").fetchall()}
    assert versions == [(v,) for v in range(1, new + 1)]
    assert "note" in cols


def test_reopening_keeps_data(tmp_path: Path) -> None:
    first = Store(tmp_path / "s")
    with first.transaction() as con:
        con.execute("INSERT INTO projects (project) VALUES ('p')")
    again = Store(tmp_path / "s")
    with again.connect(read_only=True) as con:
        assert con.execute("SELECT project FROM projects").fetchall() == [("p",)]
    assert again.schema_version() == schema.CURRENT_VERSION


def test_failed_transaction_writes_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as con:
        con.execute("INSERT INTO projects (project) VALUES ('p')")
        raise RuntimeError("boom")
    with store.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM projects").fetchone() == (0,)


def _store_at(tmp_path: Path, version: int, points_sql: str) -> tuple[Store, list[tuple]]:
    """A store whose database was written at schema `version`, its points added by
    `points_sql` right after v1; returns it (not yet opened) and its points."""
    import duckdb

    path = tmp_path / "old" / "scalinglab.duckdb"
    path.parent.mkdir()
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP "
        "DEFAULT current_timestamp)"
    )
    con.execute("BEGIN")
    for statement in schema.MIGRATIONS[0]:
        con.execute(statement)
    con.execute(points_sql)
    for migration in schema.MIGRATIONS[1:version]:
        for statement in migration:
            con.execute(statement)
    con.execute("INSERT INTO schema_version (version) SELECT unnest(range(1, ? + 1))", [version])
    before = con.execute("SELECT * FROM points ORDER BY ALL").fetchall()
    con.execute("COMMIT")
    con.close()
    return Store(path.parent), before


def test_v1_store_upgrades_and_gets_tiles(tmp_path: Path) -> None:
    """A store written at schema v1 (no curve tiles) gains them, built from its points."""
    from store.tiles import XKINDS

    store, _ = _store_at(
        tmp_path,
        1,
        "INSERT INTO points (project, run, split, step, loss) "
        "SELECT 'p', 'r', 'train', i, 1.0 / (1 + i) FROM range(1000) t(i)",
    )
    assert store.schema_version() == schema.CURRENT_VERSION
    with store.connect(read_only=True) as con:
        n = con.execute("SELECT xkind, sum(n) FROM curve_tiles GROUP BY 1").fetchall()
    assert dict(n) == {"step": 1000}
    assert set(XKINDS) >= {k for k, _ in n}


def test_v2_store_moves_points_to_series_ids(tmp_path: Path) -> None:
    """v3 keeps every point (names, numbers, a curve's family) behind the `points` view."""
    from store import tiles

    store, before = _store_at(
        tmp_path,
        2,
        "INSERT INTO points (project, run, split, step, tokens, lr, loss, family, "
        "sampling_ratio) SELECT 'p', 'r' || (i % 3), CASE WHEN i % 2 = 0 THEN 'train' "
        "ELSE 'eval/en' END, i, i * 64.0, 1e-3, 1.0 / (1 + i), "
        "CASE WHEN i % 2 = 1 THEN 'en' END, CASE WHEN i % 2 = 1 THEN 0.5 END "
        "FROM range(3000) t(i)",
    )
    assert store.schema_version() == schema.CURRENT_VERSION
    with store.connect(read_only=True) as con:
        after = con.execute("SELECT * FROM points ORDER BY ALL").fetchall()
        last_steps = con.execute("SELECT max(last_step), count(*) FROM series").fetchone()
        stored = con.execute("SELECT * FROM curve_tiles ORDER BY ALL").fetchall()
        rebuilt = con.execute(
            f"SELECT {', '.join(tiles.TILE_COLUMNS)} FROM "
            f"({tiles.aggregate_sql('point_values')}) ORDER BY ALL"
        ).fetchall()
    assert after == before
    assert last_steps == (2999, 6)
    assert stored == rebuilt and sum(row[3] for row in stored if row[1] == "step") == 3000


def test_migrated_tables_have_the_schema_column_lists(store: Store) -> None:
    """The migrations spell their columns out (frozen); the lists in store.schema must still
    describe the tables they build, so a new column needs a migration, not only a new entry."""
    from store import schema

    def columns(con, table: str) -> dict[str, str]:
        rows = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
        return dict(rows)

    with store.connect(read_only=True) as con:
        runs = columns(con, "runs")
        for name, sql_type in {**schema.RUN_FACT_COLUMNS, **schema.RUN_SUMMARY_COLUMNS}.items():
            assert runs.get(name) == sql_type.split()[0], name
        values = columns(con, "point_values")
        assert list(values) == list(schema.POINT_VALUE_COLUMNS)
        assert list(columns(con, "points")) == list(schema.POINT_COLUMNS)
    assert tuple(c for c in schema.POINT_COLUMNS if c != "project") == schema.POINT_FIELDS
