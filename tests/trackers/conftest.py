"""Shared fixtures: a fresh store per test, and the CLI run in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli as command
from store import Store

runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "store")
    s.ensure()
    return s


def cli(store: Store, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(command, [*args, "--store", str(store.root)])
    return result.exit_code, result.stdout, result.stderr


def contents(store: Store) -> dict[str, list[tuple]]:
    """Every row of the tables an import writes, sorted: to compare stores by content."""
    out = {}
    with store.connect(read_only=True) as con:
        for table in ("projects", "runs", "series", "points", "curve_tiles", "uploads"):
            rows = con.execute(f"SELECT * FROM {table}").fetchall()
            out[table] = sorted(rows, key=repr)
    return out


def points(store: Store, project: str) -> list[tuple]:
    """(run, split, step, tokens, lr, loss) of a project, in key order."""
    with store.connect(read_only=True) as con:
        return con.execute(
            "SELECT run, split, step, tokens, lr, loss FROM points WHERE project = ? "
            "ORDER BY run, split, step",
            [project],
        ).fetchall()
