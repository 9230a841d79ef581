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
    with store.connect() as con:
        assert schema.migrate(con) == 2
        assert schema.migrate(con) == 2  # already there: nothing re-applied
        versions = con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        cols = {r[0] for r in con.execute("DESCRIBE runs").fetchall()}
    assert versions == [(1,), (2,)]
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
