"""W&B offline run folders written by `wandb.init(mode="offline")`, imported with the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from store import Store, queries
from store.runfacts import facts_frame
from store.trackers import series, wandb_offline

from .conftest import cli, contents, points
from .wandb_runs import write_runs

pytest.importorskip("wandb")

SPEC = [("n1e6", 1_000_000, 0.0, 20, True), ("n4e6", 4_000_000, -0.5, 20, True)]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wandb-project")
    write_runs(root, SPEC)
    return root


@pytest.fixture
def project(written: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(written, copy, symlinks=True)
    return copy


def test_offline_runs_become_runs_with_their_config_as_facts(store: Store, project: Path) -> None:
    code, out, err = cli(store, "import", str(project / "wandb"), "-p", "w", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["files"][0]["format"] == "wandb-offline"
    assert (report["runs"], report["points"]) == (2, 2 * (20 + 2))
    rows = points(store, "w")
    assert [r for r in rows if r[0] == "n4e6" and r[2] == 3 and r[1] == "train"] == [
        ("n4e6", "train", 3, None, 3e-4, 3.47)
    ]
    assert [r for r in rows if r[0] == "n1e6" and r[1] == "eval"] == [
        ("n1e6", "eval", 0, None, None, 4.5),
        ("n1e6", "eval", 10, None, None, 4.4),
    ]
    runs = queries.list_runs(store, project="w").set_index("run")
    assert runs.loc["n4e6", "params"] == 4_000_000
    assert json.loads(runs.loc["n1e6", "config"])["optimizer"] == "adamw"
    facts = facts_frame(store, "w").set_index("run")
    assert facts.loc["n1e6", "tokens"] == 2e9
    assert facts.loc["n1e6", "peak_lr"] == 3e-4
    assert facts.loc["n1e6", "batch_size"] == 8
    assert runs.loc["n1e6", "unique_tokens"] == 500_000_000  # config's data.unique_data


def test_importing_again_adds_nothing(store: Store, project: Path) -> None:
    assert cli(store, "import", str(project), "-p", "w")[0] == 0
    before = contents(store)
    code, out, _ = cli(store, "import", str(project), "-p", "w")
    assert code == 0 and "+0 runs, +0 points" in out
    assert contents(store) == before


def test_history_rows_take_the_api_path(project: Path) -> None:
    """`run_from_rows` is what a project read through the W&B API goes through
    (`run.scan_history()` rows and `run.config`): fed the offline rows, it gives the
    same runs as the folder reader."""
    file = wandb_offline.run_files(project)[0]
    state = wandb_offline.RunFileReader(file).read()
    rows = [dict(row) for row in state.rows]  # as scan_history yields them: plain dicts
    assert {"_step", "train/loss", "train/lr"} <= set(rows[0])
    by_api = wandb_offline.run_from_rows(state.name, rows, state.config, where="api")
    by_folder = next(r for r in wandb_offline.read_runs(project) if r.name == state.name)
    assert by_api.facts == by_folder.facts
    made = [
        series.to_parsed([run], path=project, format="wandb-offline", sha256="x").points_table
        for run in (by_api, by_folder)
    ]
    assert made[0].equals(made[1])


def test_runs_sharing_a_name_keep_their_ids(store: Store, tmp_path: Path) -> None:
    write_runs(tmp_path / "p", [("same", 1000, 0.0, 2, True), ("same", 2000, 0.0, 2, True)])
    assert cli(store, "import", str(tmp_path / "p"), "-p", "w")[0] == 0
    names = sorted({r[0] for r in points(store, "w")})
    assert len(names) == 2 and all(n.startswith("same-") for n in names)


def run_file(project: Path, name_index: int = 0) -> Path:
    return wandb_offline.run_files(project)[name_index]


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("flip", "damaged W&B run file: the chunk at byte 7 (record 1) fails its checksum"),
        ("junk", "not a W&B run file (no ':W&B' header)"),
        ("header", "a W&B run file with no record in it"),
    ],
)
def test_bad_run_files_are_refused_and_nothing_is_written(
    store: Store, project: Path, damage: str, says: str
) -> None:
    target = run_file(project, 1)
    data = bytearray(target.read_bytes())
    if damage == "flip":
        data[20] ^= 0xFF  # inside the first record
    elif damage == "junk":
        data = bytearray(b"some other file\n" * 10)
    else:
        data = data[:7]  # the header only
    target.write_bytes(bytes(data))
    before = contents(store)
    code, out, err = cli(store, "import", str(project), "-p", "w")
    assert code == 2
    assert err.strip() == f"error: {target}: {says}"
    assert "Traceback" not in out + err
    assert contents(store) == before
