"""TensorBoard event files written by torch's SummaryWriter, imported with the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from store import Store
from store.trackers.optional import MissingExtraError, require

from .conftest import cli, contents, points

pytest.importorskip("tensorboard")
tensorboard_writer = pytest.importorskip("torch.utils.tensorboard")
REPO = Path(__file__).resolve().parents[2]


def write_run(
    folder: Path, steps: range, *, loss: str = "train/loss", shift: float = 0.0, evals: bool = True
) -> None:
    """A short run: a train loss every step, the LR, an eval loss every 10 steps."""
    writer = tensorboard_writer.SummaryWriter(str(folder))
    for step in steps:
        writer.add_scalar(loss, 4.0 - step / 100 + shift, step)
        writer.add_scalar("train/learning_rate", 0.001, step)
        writer.add_scalar("grad_norm", 1.5, step)
        if evals and step % 10 == 0:
            writer.add_scalar("eval/loss", 4.5 - step / 100, step)
    writer.close()


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    write_run(root / "sweep" / "n1e6", range(0, 20))
    write_run(root / "sweep" / "n4e6", range(0, 20), shift=-0.5)
    write_run(root / "baseline", range(0, 5))
    return root


def test_nested_runs_become_runs_with_loss_eval_and_lr(store: Store, runs: Path) -> None:
    code, out, err = cli(store, "import", str(runs), "-p", "tb", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["files"][0]["format"] == "tensorboard-events"
    assert report["runs"] == 3
    rows = points(store, "tb")
    assert {r[0] for r in rows} == {"baseline", "sweep/n1e6", "sweep/n4e6"}
    # 20 train + 2 eval, twice; 5 train + 1 eval.
    assert len(rows) == 22 + 22 + 6 == report["points"]
    train = [r for r in rows if r[0] == "sweep/n4e6" and r[1] == "train"]
    # float32 scalars are stored as the decimals that were logged.
    assert train[3] == ("sweep/n4e6", "train", 3, None, 0.001, 3.47)
    evals = [r for r in rows if r[0] == "sweep/n1e6" and r[1] == "eval"]
    assert evals == [
        ("sweep/n1e6", "eval", 0, None, None, 4.5),
        ("sweep/n1e6", "eval", 10, None, None, 4.4),
    ]
    with store.connect(read_only=True) as con:
        status = con.execute("SELECT DISTINCT status FROM runs WHERE project = 'tb'").fetchall()
    assert status == [("imported",)]


def test_importing_again_adds_nothing(store: Store, runs: Path) -> None:
    assert cli(store, "import", str(runs), "-p", "tb")[0] == 0
    before = contents(store)
    code, out, _ = cli(store, "import", str(runs), "-p", "tb")
    assert code == 0
    assert "already imported" in out and "+0 runs, +0 points" in out
    assert contents(store) == before


def test_a_restarted_run_keeps_the_latest_value_of_a_step(store: Store, runs: Path) -> None:
    assert cli(store, "import", str(runs), "-p", "tb")[0] == 0
    # The job restarts from step 3 in a new event file and goes on to step 7.
    write_run(runs / "baseline", range(3, 8), shift=1.0)
    code, _, err = cli(store, "import", str(runs), "-p", "tb")
    assert code == 0, err
    train = [r for r in points(store, "tb") if r[0] == "baseline" and r[1] == "train"]
    assert [r[2] for r in train] == list(range(8))
    assert train[2][5] == 3.98 and train[3][5] == 4.97  # step 3 from the restart


def test_tag_choice_and_roles(store: Store, tmp_path: Path) -> None:
    write_run(tmp_path / "r", range(0, 3), loss="objective", evals=False)
    code, _, err = cli(store, "import", str(tmp_path / "r"), "-p", "a")
    assert code == 2
    assert "no loss tag among ['grad_norm', 'objective', 'train/learning_rate']" in err
    assert "--tag" in err
    code, _, err = cli(
        store, "import", str(tmp_path / "r"), "-p", "a", "--tag", "objective=train",
        "--tag", "grad_norm=lr",
    )  # fmt: skip
    assert code == 0, err
    assert points(store, "a") == [("r", "train", s, None, 1.5, 4.0 - s / 100) for s in range(3)]


def test_two_tags_of_one_role_keep_the_longer_with_a_note(store: Store, tmp_path: Path) -> None:
    writer = tensorboard_writer.SummaryWriter(str(tmp_path / "r"))
    for step in range(4):
        writer.add_scalar("train/loss", 2.0, step)
    writer.add_scalar("loss", 9.0, 3)
    writer.close()
    code, out, err = cli(store, "import", str(tmp_path / "r"), "-p", "a")
    assert code == 0, err
    assert "tag 'loss' left out: 'train/loss' is read as the train loss (--tag)" in out
    assert [r[5] for r in points(store, "a")] == [2.0] * 4
    code, _, err = cli(store, "import", str(tmp_path / "r"), "-p", "b", "--tag", "loss",
                       "--tag", "train/loss")  # fmt: skip
    assert code == 2
    assert "tags 'loss' and 'train/loss' are both read as the train loss" in err


def test_format_names(store: Store, runs: Path, tmp_path: Path) -> None:
    # `--format tensorboard` names the CSV export; given a folder it means its event files.
    assert cli(store, "import", str(runs), "-p", "a", "--format", "tensorboard")[0] == 0
    assert cli(store, "import", str(runs), "-p", "b", "-f", "tensorboard-events")[0] == 0
    assert points(store, "a") == points(store, "b")
    export = tmp_path / "run-r1-tag-train_loss.csv"
    export.write_text("Wall time,Step,Value\n1.0,0,3.5\n2.0,10,3.0\n")
    code, _, err = cli(store, "import", str(export), "-p", "c", "-f", "tensorboard")
    assert code == 0, err
    assert points(store, "c") == [
        ("r1", "train", 0, None, None, 3.5),
        ("r1", "train", 10, None, None, 3.0),
    ]
    code, _, err = cli(store, "import", str(runs), "-p", "d", "-f", "wandb-offline")
    assert code == 2 and "expected TensorBoard event files" not in err


def event_file(runs: Path, run: str) -> Path:
    return next((runs / run).glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("flip", "damaged TensorBoard event file: record 3 fails its checksum"),
        ("junk", "damaged TensorBoard event file: record 1 fails its checksum"),
        ("empty", "not a TensorBoard event file: no record could be read"),
    ],
)
def test_bad_event_files_are_refused_and_nothing_is_written(
    store: Store, runs: Path, damage: str, says: str
) -> None:
    target = event_file(runs, "sweep/n4e6")
    data = bytearray(target.read_bytes())
    if damage == "flip":
        data[150] ^= 0xFF  # inside the third record
    elif damage == "junk":
        data = bytearray(b"this is no event file, just text" * 8)
    else:
        data = bytearray()
    target.write_bytes(bytes(data))
    before = contents(store)
    code, out, err = cli(store, "import", str(runs), "-p", "tb")
    assert code == 2
    assert err.strip() == f"error: {target}: {says}"
    assert "Traceback" not in out + err
    assert contents(store) == before


def test_a_negative_loss_is_refused_with_its_place(store: Store, tmp_path: Path) -> None:
    writer = tensorboard_writer.SummaryWriter(str(tmp_path / "r"))
    writer.add_scalar("loss", 1.0, 0)
    writer.add_scalar("loss", -0.5, 7)
    writer.close()
    before = contents(store)
    code, _, err = cli(store, "import", str(tmp_path / "r"), "-p", "a")
    assert code == 2
    assert err.strip() == f"error: {tmp_path / 'r'}: tag 'loss', step 7: negative loss -0.5"
    assert contents(store) == before


def test_a_folder_without_runs_is_refused(store: Store, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = cli(store, "import", str(tmp_path / "empty"), "-p", "a")
    assert code == 2
    assert "expected TensorBoard event files (events.out.tfevents.*), W&B offline" in err
    code, _, err = cli(store, "import", str(tmp_path / "empty"), "-p", "a", "-f", "tensorboard")
    assert code == 2
    assert "no TensorBoard event files (events.out.tfevents.*) here" in err


def test_a_diverged_run_keeps_its_steps_without_values(store: Store, tmp_path: Path) -> None:
    writer = tensorboard_writer.SummaryWriter(str(tmp_path / "r"))
    writer.add_scalar("loss", 2.0, 0)
    writer.add_scalar("loss", float("nan"), 1)
    writer.close()
    assert cli(store, "import", str(tmp_path / "r"), "-p", "a")[0] == 0
    assert points(store, "a") == [
        ("r", "train", 0, None, None, 2.0),
        ("r", "train", 1, None, None, None),
    ]


def test_a_missing_extra_names_what_to_install() -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'scalinglab\[tensorboard\]'"):
        require("tensorboard_not_installed_here.reader", "tensorboard")


def test_store_and_app_do_not_import_the_trackers_or_torch() -> None:
    code = (
        "import sys, store.trackers, store.importers, app.cli, scalinglab\n"
        "bad = [m for m in ('tensorboard', 'wandb', 'mlflow', 'trackio', 'sqlalchemy', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_an_upload_of_tracker_runs_records_who_imported_it(store: Store, runs: Path) -> None:
    from store.importers import import_files

    import_files(store, [runs], project="tb", imported_by="eddie@example.org")
    with store.connect(read_only=True) as con:
        rows = con.execute("SELECT format, imported_by FROM uploads").fetchall()
    assert rows == [("tensorboard-events", "eddie@example.org")]
