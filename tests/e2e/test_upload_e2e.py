"""End to end in Chromium: upload a zip of TensorBoard runs and a Parquet file, review both,
import them, and find exactly their points in the store; a zip bomb is refused on the page.
Screenshots land in test-artifacts/."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from store import Store
from tests.e2e.conftest import screenshot, wait_idle
from tests.e2e.harness import Server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
pytest.importorskip("tensorboard")

STEPS = 30


def write_tensorboard_runs(root: Path) -> None:
    """Two runs written by TensorBoard's own writer: a train loss and the LR every step."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    for run, shift in (("n1e6", 0.0), ("n4e6", -0.5)):
        writer = EventFileWriter(str(root / run))
        for step in range(STEPS):
            values = [
                summary_pb2.Summary.Value(tag="train/loss", simple_value=4.0 - step / 64 + shift),
                summary_pb2.Summary.Value(tag="train/lr", simple_value=0.25),
            ]
            writer.add_event(
                event_pb2.Event(
                    step=step, wall_time=1e9 + step, summary=summary_pb2.Summary(value=values)
                )
            )
        writer.close()


def zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(folder.parent).as_posix())
    return target


def parquet_curves(target: Path) -> Path:
    steps = list(range(0, 100, 10))
    pd.DataFrame(
        {
            "run": ["pq-a"] * len(steps),
            "step": steps,
            "val_loss": [3.5 - s / 200 for s in steps],
            "params": [2_000_000] * len(steps),
        }
    ).to_parquet(target)
    return target


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> object:
    srv = Server(tmp_path_factory.mktemp("e2e-upload") / "store")
    yield srv
    srv.stop()


def test_a_zip_of_tensorboard_runs_and_a_parquet_file(
    server: Server, page: object, tmp_path: Path
) -> None:
    pg = page
    write_tensorboard_runs(tmp_path / "runs")
    runs_zip = zip_folder(tmp_path / "runs", tmp_path / "runs.zip")
    curves = parquet_curves(tmp_path / "curves.parquet")
    pg.goto(f"{server.url}/upload")
    wait_idle(pg)
    pg.locator('input[type="file"]').set_input_files([str(runs_zip), str(curves)])
    pg.get_by_text("tensorboard-events").first.wait_for()
    pg.get_by_text(re.compile(r"Detected format: long")).wait_for()
    confirm = pg.get_by_role("button", name=re.compile(r"^Import 2 file"))
    confirm.wait_for()
    wait_idle(pg)
    screenshot(pg, "upload-zip-parquet-review")
    body = pg.inner_text("body")
    assert "2 run(s), 60 point(s)" in body and "1 run(s), 10 point(s)" in body
    confirm.click()
    pg.get_by_text("Imported into 'uploads'").wait_for()
    wait_idle(pg)
    screenshot(pg, "upload-zip-parquet-imported")
    assert "3 run(s), 70 point(s)" in pg.inner_text("body")

    store = Store(server.store)
    with store.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT run, split, count(*), min(loss), max(lr) FROM points "
            "WHERE project = 'uploads' GROUP BY run, split ORDER BY run"
        ).fetchall()
        uploads = con.execute("SELECT format, n_runs, n_points FROM uploads ORDER BY format")
        uploads = uploads.fetchall()
    last = 4.0 - (STEPS - 1) / 64
    assert rows == [
        ("n1e6", "train", STEPS, last, 0.25),
        ("n4e6", "train", STEPS, last - 0.5, 0.25),
        ("pq-a", "eval", 10, 3.5 - 90 / 200, None),
    ]
    assert uploads == [("long", 1, 10), ("tensorboard-events", 2, 60)]
    from store.audit import list_audit

    targets = sorted(list_audit(store, action="upload")["target"])
    assert targets == ["curves.parquet", "runs.zip"]
    # Nothing is left in the staging folder once imported.
    assert [p for p in (server.store / "staging").rglob("*") if p.is_file()] == []


def test_a_zip_bomb_is_refused_on_the_page(server: Server, page: object, tmp_path: Path) -> None:
    pg = page
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("runs/a/events.out.tfevents.1", bytes(32 << 20))
    pg.goto(f"{server.url}/upload")
    wait_idle(pg)
    pg.locator('input[type="file"]').set_input_files(str(bomb))
    pg.get_by_text(re.compile(r"expands more than 200 times \(a zip bomb\?\)")).wait_for()
    wait_idle(pg)
    screenshot(pg, "upload-zip-bomb-refused")
    assert pg.get_by_role("button", name=re.compile(r"^Import")).count() == 0
