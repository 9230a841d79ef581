"""The store's CLI verbs: import, runs, export, info, ingest (real console script too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import cli as command
from store import schema

REPO = Path(__file__).resolve().parents[2]
# The console script of the interpreter running the tests (its venv's bin folder).
SCRIPT = Path(sys.executable).parent / "scalinglab"
runner = CliRunner()


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(command, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def curves(tmp_path: Path) -> Path:
    path = tmp_path / "curves.csv"
    path.write_text("run,step,loss,lr\na,0,4.0,0.1\na,1,3.0,0.1\nb,0,4.5,0.1\n")
    return path


def test_import_runs_export_info(tmp_path: Path, curves: Path) -> None:
    store = str(tmp_path / "store")
    code, out, _ = cli("import", str(curves), "--project", "p", "--store", store)
    assert code == 0 and "2 runs, 3 points" in out
    code, out, _ = cli("import", str(curves), "--project", "p", "--store", store, "--json")
    assert code == 0 and json.loads(out)["files"][0]["skipped"] is True
    code, out, _ = cli("runs", "--project", "p", "--store", store, "--json")
    runs = json.loads(out)
    assert code == 0 and [r["run"] for r in runs] == ["a", "b"]
    assert runs[0]["n_points"] == 2 and runs[0]["last_loss"] == 3.0
    code, out, _ = cli("runs", "--store", store)
    assert code == 0 and "imported" in out
    target = tmp_path / "out.parquet"
    code, out, _ = cli("export", "--runs", "a", "--out", str(target), "--store", store)
    assert code == 0 and "wrote 2 points" in out
    assert pd.read_parquet(target)["loss"].tolist() == [4.0, 3.0]
    code, out, _ = cli("info", "--store", store, "--json")
    info = json.loads(out)
    assert (info["runs"], info["points"]) == (2, 3)
    assert code == 0 and info["schema_version"] == schema.CURRENT_VERSION


def test_env_var_selects_the_store(
    tmp_path: Path, curves: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCALINGLAB_STORE", str(tmp_path / "env-store"))
    code, _, _ = cli("import", str(curves))
    assert code == 0
    assert (tmp_path / "env-store" / "scalinglab.duckdb").exists()


def test_ingest_verb(tmp_path: Path) -> None:
    from store.inbox import InboxWriter

    store = tmp_path / "store"
    with InboxWriter(store, "p", "live") as w:
        w.log(0, loss=2.0)
    code, out, _ = cli("ingest", "--store", str(store), "--json")
    assert code == 0 and json.loads(out)["points"] == 1


def test_bad_input_exits_2_with_message_on_stderr(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("run,step,loss\na,0,3.0\na,x,2.0\n")
    env = {**os.environ, "SCALINGLAB_STORE": str(tmp_path / "store")}
    proc = subprocess.run(
        [str(SCRIPT), "import", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "bad.csv, line 3, column 'step': expected a non-negative integer, got 'x'" in proc.stderr
    assert "Traceback" not in proc.stderr
    code, _, err = cli("export", "--out", str(tmp_path / "x.xlsx"), "--store", str(tmp_path))
    assert code == 2 and ".csv or .parquet" in err


@pytest.mark.parametrize("verb", ["import", "runs", "export", "info", "ingest"])
def test_help(verb: str) -> None:
    code, out, _ = cli(verb, "--help")
    assert code == 0 and "--store" in out


def test_map_several_columns_to_run(tmp_path: Path) -> None:
    """An LR sweep whose model names repeat: --map model=run --map peak_lr=run."""
    sweep = tmp_path / "sweep.csv"
    sweep.write_text(
        "model,peak_lr,current_steps,eval\n"
        "m35,0.002,100,4.0\nm35,0.002,200,3.5\nm35,0.004,100,4.2\nm35,0.004,200,3.6\n"
    )
    store = str(tmp_path / "store")
    steps_and_loss = ("--map", "current_steps=step", "--map", "eval=loss")
    code, _, err = cli("import", str(sweep), "--store", store, *steps_and_loss)
    assert code == 2 and "map every column that tells them apart to run" in err
    run_columns = ("--map", "model=run", "--map", "peak_lr=run")
    code, out, err = cli("import", str(sweep), "--store", store, *run_columns, *steps_and_loss)
    assert code == 0, err
    code, out, _ = cli("runs", "--store", store, "--json")
    runs = {r["run"]: r["last_loss"] for r in json.loads(out)}
    assert runs == {"m35/0.002": 3.5, "m35/0.004": 3.6}
    code, _, err = cli("import", str(sweep), "--store", store, "--map", "eval")
    assert code == 2 and "COLUMN=NAME" in err


def test_runs_never_cuts_a_name(tmp_path: Path) -> None:
    """Names that share a long prefix stay whole at 80 columns and in a pipe."""
    from store.inbox import InboxWriter

    store = tmp_path / "store"
    names = ["constant_24000", "constant_72000", "a-rather-long-run-name-" + "x" * 60]
    project = "a-project-name-that-is-long-too"
    for name in names:
        with InboxWriter(store, project, name, facts={"params": 123456789}) as w:
            w.log(0, loss=1.23456)
    env = {**os.environ, "COLUMNS": "80", "TERM": "xterm"}
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "runs", "--store", str(store)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == [
        "project",
        "run",
        "status",
        "params",
        "n_points",
        "last_step",
        "last_loss",
    ]
    rows = [line.split() for line in lines[2:]]
    assert [row[1] for row in rows] == sorted(names)
    assert {row[0] for row in rows} == {project}
    assert rows[0][2:] == ["finished", "123456789", "1", "0", "1.235"]
    assert "…" not in proc.stdout


def test_info_counts_live_runs_as_runs_lists_them(tmp_path: Path, curves: Path) -> None:
    from store.inbox import InboxWriter

    store = str(tmp_path / "store")
    assert cli("import", str(curves), "--project", "p", "--store", store)[0] == 0
    live = InboxWriter(store, "q", "live")
    live.log_many({"step": [0, 1, 2], "loss": [3.0, 2.0, 1.0]})
    live.flush()
    code, out, _ = cli("info", "--store", store, "--json")
    info = json.loads(out)
    listed = json.loads(cli("runs", "--store", store, "--json")[1])
    assert code == 0 and len(listed) == 3
    assert (info["projects"], info["runs"], info["points"]) == (2, 3, 6)
    code, out, _ = cli("info", "--store", store)
    assert "            runs: 3" in out.splitlines()
    live.close()
    cli("ingest", "--store", store)
    info = json.loads(cli("info", "--store", store, "--json")[1])
    assert (info["projects"], info["runs"], info["points"], info["inbox_shards"]) == (2, 3, 6, 0)
