"""Shared fixtures: a fresh store folder per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "store")
    s.ensure()
    return s


def table_contents(s: Store) -> dict[str, list[tuple]]:
    """Every user-visible row of every table, sorted: to compare stores by content."""
    out = {}
    with s.connect(read_only=True) as con:
        tables = ("projects", "runs", "series", "points", "curve_tiles", "fits", "jobs")
        for table in (*tables, "ingested_shards", "uploads"):
            rows = con.execute(f"SELECT * FROM {table}").fetchall()
            out[table] = sorted(rows, key=repr)
    return out
