"""trackio project databases written by `trackio.init/log/finish` (offline, in a private
TRACKIO_DIR), imported with the real CLI."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from store import Store, queries
from store.runfacts import facts_frame

from .conftest import cli, contents, points
from .trackio_runs import write_projects

pytest.importorskip("trackio")

# A step logged again keeps its last value; a NaN (a diverged step) keeps the step.
SPEC = [
    ("sweep", "n1e6", 1_000_000, 0.0, 20, [(5, 9.0)]),
    ("sweep", "n4e6", 4_000_000, -0.5, 20, [(20, "nan")]),
    ("other", "base", 2_000_000, 0.0, 3, []),
]


def train_loss(step: int, shift: float) -> float:
    return 4.0 - step / 100 + shift


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trackio")
    write_projects(root, SPEC)
    return root


@pytest.fixture
def folder(written: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "trackio"
    shutil.copytree(written, copy)
    return copy


def test_a_project_database_becomes_runs_with_config_facts(store: Store, folder: Path) -> None:
    db = folder / "sweep.db"
    code, out, err = cli(store, "import", str(db), "-p", "t", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["files"][0]["format"] == "trackio"
    # n1e6: 20 train + 2 eval; n4e6: 21 train (step 20 without a value) + 2 eval.
    assert (report["runs"], report["points"]) == (2, 22 + 23)
    rows = points(store, "t")
    n1 = [r for r in rows if r[0] == "n1e6" and r[1] == "train"]
    assert n1[3] == ("n1e6", "train", 3, None, 3e-4, train_loss(3, 0.0))
    assert n1[5][5] == 9.0
    n4 = [r for r in rows if r[0] == "n4e6" and r[1] == "train"]
    assert n4[-1] == ("n4e6", "train", 20, None, None, None)
    assert [r for r in rows if r[0] == "n1e6" and r[1] == "eval"] == [
        ("n1e6", "eval", 0, None, None, 4.5),
        ("n1e6", "eval", 10, None, None, 4.4),
    ]
    runs = queries.list_runs(store, project="t").set_index("run")
    assert runs.loc["n4e6", "params"] == 4_000_000
    facts = facts_frame(store, "t").set_index("run")
    assert facts.loc["n1e6", "tokens"] == 2e9
    assert facts.loc["n1e6", "peak_lr"] == 3e-4
    assert facts.loc["n1e6", "batch_size"] == 8
    assert facts.loc["n1e6", "optimizer"] == "adamw"
    assert facts.loc["n1e6", "warmup_steps"] == 100
    assert "_Created" not in facts.columns  # trackio's own keys are not facts
    assert runs.loc["n1e6", "unique_tokens"] == 500_000_000


def test_a_folder_is_every_project_in_it(store: Store, folder: Path) -> None:
    files = sorted(p.name for p in folder.iterdir())
    code, _, err = cli(store, "import", str(folder), "-p", "t")
    assert code == 0, err
    runs = set(queries.list_runs(store, project="t")["run"])
    assert runs == {"sweep/n1e6", "sweep/n4e6", "other/base"}
    # Read from a private copy: no -wal/-shm files left beside the user's databases.
    assert sorted(p.name for p in folder.iterdir()) == files


def test_importing_again_adds_nothing(store: Store, folder: Path) -> None:
    assert cli(store, "import", str(folder), "-p", "t")[0] == 0
    before = contents(store)
    code, out, _ = cli(store, "import", str(folder), "-p", "t", "--format", "trackio")
    assert code == 0
    assert "already imported" in out and "+0 runs, +0 points" in out
    assert contents(store) == before


def test_a_negative_loss_is_refused_with_its_run_tag_and_step(store: Store, tmp_path: Path) -> None:
    write_projects(tmp_path / "bad", [("p", "r", 1000, 0.0, 3, [(7, -0.5)])])
    db = tmp_path / "bad" / "p.db"
    before = contents(store)
    code, _, err = cli(store, "import", str(db), "-p", "t")
    assert code == 2
    assert err.strip() == f"error: {db}, run 'r': tag 'train/loss', step 7: negative loss -0.5"
    assert contents(store) == before


def test_damaged_values_are_refused_with_their_row(store: Store, folder: Path) -> None:
    db = folder / "other.db"
    con = sqlite3.connect(db)
    row_id = con.execute("SELECT max(id) FROM metrics").fetchone()[0]
    con.execute("UPDATE metrics SET metrics = '{\"train/loss\": 3.' WHERE id = ?", [row_id])
    con.commit()
    con.close()
    before = contents(store)
    code, out, err = cli(store, "import", str(folder), "-p", "t")
    assert code == 2
    assert err.strip() == (
        f"error: {db}, run 'other/base': row id {row_id}: the logged values are no JSON object"
    )
    assert "Traceback" not in out + err
    assert contents(store) == before


def test_another_database_is_not_read_as_trackio(store: Store, tmp_path: Path) -> None:
    other = tmp_path / "notes.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE metrics (name TEXT)")
    con.commit()
    con.close()
    code, _, err = cli(store, "import", str(other), "-p", "t", "--format", "trackio")
    assert code == 2
    assert err.strip() == (
        f"error: {other}: no trackio project database here (<project>.db with a metrics table)"
    )
