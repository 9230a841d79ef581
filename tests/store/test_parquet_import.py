"""Parquet files (written by pandas/pyarrow) through the CSV importer's layouts, checks and
messages, with the real CLI: the same points as the same data in CSV, rows named in errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from app.cli import cli as command
from store import Store

from .conftest import table_contents

runner = CliRunner()
BIG_STEP = 2**53 + 1  # a double would round it


def cli(store: Store, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(command, [*args, "--store", str(store.root)])
    return result.exit_code, result.stdout, result.stderr


def points(store: Store, project: str) -> list[tuple]:
    with store.connect(read_only=True) as con:
        return con.execute(
            "SELECT run, split, step, lr, loss FROM points WHERE project = ? "
            "ORDER BY run, split, step",
            [project],
        ).fetchall()


def curves() -> pd.DataFrame:
    """Two runs; run b's step 3 logs only the LR (its loss is missing: NaN in pandas)."""
    return pd.DataFrame(
        {
            "run": ["a"] * 4 + ["b"] * 4,
            "step": [0, 1, 2, BIG_STEP] * 2,
            "loss": [4.0, 3.5, 3.25, 3.0, 5.0, 4.0, 3.0, np.nan],
            "lr": [1e-3] * 8,
            "params": [1000] * 4 + [2000] * 4,
        }
    )


def test_parquet_reads_as_the_same_data_in_csv(store: Store, tmp_path: Path) -> None:
    frame = curves()
    frame.to_parquet(tmp_path / "runs.parquet")
    frame.to_csv(tmp_path / "runs.csv", index=False)
    code, out, err = cli(store, "import", str(tmp_path / "runs.parquet"), "-p", "pq", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["files"][0]["format"] == "long"
    assert (report["runs"], report["points"]) == (2, 8)
    assert cli(store, "import", str(tmp_path / "runs.csv"), "-p", "csv")[0] == 0
    got = points(store, "pq")
    assert got == points(store, "csv")
    assert ("a", "train", BIG_STEP, 1e-3, 3.0) in got  # int64 steps stay exact
    assert ("b", "train", BIG_STEP, 1e-3, None) in got  # NaN is a missing loss
    with store.connect(read_only=True) as con:
        params = con.execute("SELECT run, params FROM runs WHERE project = 'pq' ORDER BY run")
        assert params.fetchall() == [("a", 1000), ("b", 2000)]


def test_importing_again_adds_nothing(store: Store, tmp_path: Path) -> None:
    curves().to_parquet(tmp_path / "runs.parquet")
    assert cli(store, "import", str(tmp_path / "runs.parquet"), "-p", "pq")[0] == 0
    before = table_contents(store)
    code, out, _ = cli(store, "import", str(tmp_path / "runs.parquet"), "-p", "pq")
    assert code == 0
    assert "already imported" in out and "+0 runs, +0 points" in out
    assert table_contents(store) == before


def test_a_table_of_final_losses(store: Store, tmp_path: Path) -> None:
    table = pa.table({"N": [1e6, 4e6, 1.6e7], "D": [2e7, 8e7, 3.2e8], "loss": [3.9, 3.4, 3.0]})
    pq.write_table(table, tmp_path / "models.parquet")
    code, out, err = cli(store, "import", str(tmp_path / "models.parquet"), "-p", "t", "--json")
    assert code == 0, err
    assert json.loads(out)["files"][0]["format"] == "table"
    with store.connect(read_only=True) as con:
        rows = con.execute("SELECT params, last_loss FROM runs WHERE project = 't' ORDER BY params")
        assert rows.fetchall() == [(1_000_000, 3.9), (4_000_000, 3.4), (16_000_000, 3.0)]


def damaged(kind: str) -> pd.DataFrame:
    frame = curves()
    if kind == "negative":
        frame.loc[5, "loss"] = -1.0
    elif kind == "fraction":
        frame["step"] = frame["step"].astype(float)
        frame.loc[2, "step"] = 1.5
    elif kind == "text":
        frame["loss"] = frame["loss"].astype(str)
        frame.loc[4, "loss"] = "oops"
    elif kind == "infinite":
        frame.loc[1, "loss"] = np.inf
    return frame


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        (
            "negative",
            "row 6, column 'loss': expected a non-negative loss (nats or bits), got '-1.0'",
        ),
        ("fraction", "row 3, column 'step': expected a non-negative integer, got '1.5'"),
        ("text", "row 5, column 'loss': expected a number, got 'oops'"),
        ("infinite", "row 2, column 'loss': expected a finite number, got 'inf'"),
    ],
)
def test_bad_cells_are_refused_with_their_row_and_nothing_is_written(
    store: Store, tmp_path: Path, kind: str, says: str
) -> None:
    damaged(kind).to_parquet(tmp_path / "runs.parquet")
    before = table_contents(store)
    code, out, err = cli(store, "import", str(tmp_path / "runs.parquet"), "-p", "pq")
    assert code == 2
    assert err.strip() == f"error: runs.parquet, {says}"
    assert "Traceback" not in out + err
    assert table_contents(store) == before


def test_a_missing_column_and_a_cut_file_are_refused(store: Store, tmp_path: Path) -> None:
    curves().drop(columns=["step"]).to_parquet(tmp_path / "nostep.parquet")
    code, _, err = cli(store, "import", str(tmp_path / "nostep.parquet"), "-p", "pq", "-f", "long")
    assert code == 2
    assert err.startswith("error: nostep.parquet: missing required column(s) ['step']")
    data = (tmp_path / "nostep.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[:12] + data[-8:])  # magic at both ends
    code, _, err = cli(store, "import", str(tmp_path / "cut.parquet"), "-p", "pq")
    assert code == 2
    assert err.startswith("error: cut.parquet: not a readable Parquet file")
    assert table_contents(store)["points"] == []
