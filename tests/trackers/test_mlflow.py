"""MLflow local stores (an `mlruns/` file store and a SQLite backend) written by mlflow's
own fluent API, imported with the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store import Store, queries
from store.runfacts import facts_frame

from .conftest import cli, contents, points

mlflow = pytest.importorskip("mlflow")

# (run, n_params, loss shift): two runs of one experiment.
SPEC = [("n1e6", 1_000_000, 0.0), ("n4e6", 4_000_000, -0.5)]
BACKENDS = ("file", "sqlite")


def train_loss(step: int, shift: float) -> float:
    return 4.0 - step / 100 + shift


@pytest.fixture(autouse=True)
def _file_store_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow 3 refuses to *write* a file store unless asked; the reader asks by itself.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


def write_store(
    uri: str, spec: list[tuple[str, int, float]], *, negative_at: int | None = None
) -> None:
    """Runs logged the way a training script logs them: params, then metrics per step."""
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment("scaling")
        for name, params, shift in spec:
            with mlflow.start_run(run_name=name):
                mlflow.log_params(
                    {"n_params": params, "lr": 3e-4, "batch_size": 8, "max_tokens": 2e9,
                     "optimizer": "adamw", "warmup_steps": 100, "U_D": 500_000_000}
                )  # fmt: skip
                for step in range(20):
                    mlflow.log_metric("train_loss", train_loss(step, shift), step=step)
                    mlflow.log_metric("learning_rate", 1e-3, step=step)
                    if step % 10 == 0:
                        mlflow.log_metric("val_loss", 4.5 - step / 100, step=step)
                mlflow.log_metric("train_loss", 9.0 if negative_at is None else -0.5,
                                  step=5 if negative_at is None else negative_at)  # fmt: skip
                mlflow.log_metric("grad_norm", 1.5, step=0)
    finally:
        mlflow.set_tracking_uri(None)


def make_store(where: Path, backend: str, spec=SPEC, **kw: int) -> tuple[Path, str]:
    """(the path given to `scalinglab import`, the tracking URI written to)."""
    where.mkdir(parents=True, exist_ok=True)
    if backend == "file":
        path = where / "mlruns"
        uri = path.as_uri()
    else:
        path = where / "mlflow.db"
        uri = f"sqlite:///{path}"
    write_store(uri, spec, **kw)
    return path, uri


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    before = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        root = tmp_path_factory.mktemp("mlflow")
        yield {b: make_store(root / b, b)[0] for b in BACKENDS}
    finally:
        if before is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


@pytest.fixture(params=BACKENDS)
def backend_store(request: pytest.FixtureRequest, written: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the written store, so a test may damage it."""
    source = written[request.param]
    copy = tmp_path / "copy" / source.name
    copy.parent.mkdir()
    if source.is_dir():
        shutil.copytree(source, copy)
    else:
        shutil.copyfile(source, copy)
    return copy


def test_runs_become_curves_with_params_as_facts(store: Store, backend_store: Path) -> None:
    code, out, err = cli(store, "import", str(backend_store), "-p", "m", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["files"][0]["format"] == "mlflow"
    # 20 train steps + 2 evals per run; grad_norm is not read.
    assert (report["runs"], report["points"]) == (2, 2 * 22)
    rows = points(store, "m")
    train = [r for r in rows if r[0] == "scaling/n4e6" and r[1] == "train"]
    assert [r[2] for r in train] == list(range(20))
    assert train[3] == ("scaling/n4e6", "train", 3, None, 1e-3, train_loss(3, -0.5))
    assert train[5][5] == 9.0  # step 5 logged again: the last value wins
    assert [r for r in rows if r[0] == "scaling/n1e6" and r[1] == "eval"] == [
        ("scaling/n1e6", "eval", 0, None, None, 4.5),
        ("scaling/n1e6", "eval", 10, None, None, 4.4),
    ]
    runs = queries.list_runs(store, project="m").set_index("run")
    assert runs.loc["scaling/n4e6", "params"] == 4_000_000
    assert runs.loc["scaling/n1e6", "status"] == "imported"
    assert json.loads(runs.loc["scaling/n1e6", "config"])["optimizer"] == "adamw"
    facts = facts_frame(store, "m").set_index("run")
    assert facts.loc["scaling/n1e6", "tokens"] == 2e9
    assert facts.loc["scaling/n1e6", "peak_lr"] == 3e-4
    assert facts.loc["scaling/n1e6", "batch_size"] == 8
    # Params no canonical name claims are run facts of their own (MLflow keeps text).
    assert facts.loc["scaling/n1e6", "optimizer"] == "adamw"
    assert facts.loc["scaling/n1e6", "warmup_steps"] == 100
    # Muennighoff et al.'s U_D under one of its names: the run's unique_tokens column.
    assert runs.loc["scaling/n1e6", "unique_tokens"] == 500_000_000
    assert "U_D" not in facts.columns


def test_importing_again_adds_nothing(store: Store, backend_store: Path) -> None:
    assert cli(store, "import", str(backend_store), "-p", "m")[0] == 0
    before = contents(store)
    code, out, _ = cli(store, "import", str(backend_store), "-p", "m")
    assert code == 0
    assert "already imported" in out and "+0 runs, +0 points" in out
    assert contents(store) == before


def test_uri_folder_and_format_names(store: Store, written: dict[str, Path]) -> None:
    db, mlruns = written["sqlite"], written["file"]
    # `sqlite:///` + an absolute path, as MLflow's own tracking URI spells it.
    code, _, err = cli(store, "import", f"sqlite:///{db}", "-p", "a")
    assert code == 0, err
    # The folder that holds `mlruns/`, named with --format.
    code, _, err = cli(store, "import", str(mlruns.parent), "-p", "b", "--format", "mlflow")
    assert code == 0, err
    assert points(store, "a") == points(store, "b")
    code, _, err = cli(store, "import", str(db), "-p", "c", "--format", "trackio")
    assert code == 2 and "no trackio project database here" in err


def test_a_negative_loss_is_refused_with_its_run_metric_and_step(
    store: Store, tmp_path: Path
) -> None:
    path, _ = make_store(tmp_path / "bad", "sqlite", SPEC[:1], negative_at=7)
    before = contents(store)
    code, _, err = cli(store, "import", str(path), "-p", "m")
    assert code == 2
    assert err.strip() == (
        f"error: {path}, run 'scaling/n1e6': tag 'train_loss', step 7: negative loss -0.5"
    )
    assert contents(store) == before


def test_a_damaged_metric_file_is_named_with_its_line(store: Store, written: dict[str, Path], tmp_path: Path) -> None:  # fmt: skip
    copy = tmp_path / "mlruns"
    shutil.copytree(written["file"], copy)
    metric = next(copy.rglob("metrics/val_loss"))
    lines = metric.read_text().splitlines()
    metric.write_text("\n".join([lines[0], "1700000000000 not-a-number 10"]) + "\n")
    before = contents(store)
    code, out, err = cli(store, "import", str(copy), "-p", "m")
    assert code == 2
    assert err.strip() == (
        f"error: {metric}, line 2: metric 'val_loss' of run {metric.parents[1].name}: "
        "expected 'timestamp value step' lines (could not convert string to float: "
        "'not-a-number')"
    )
    assert "Traceback" not in out + err
    assert contents(store) == before


def test_another_sqlite_database_is_refused_and_left_as_it_was(store: Store, tmp_path: Path) -> None:  # fmt: skip
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE metrics (name TEXT, value REAL)")
    con.commit()
    con.close()
    data = other.read_bytes()
    before = contents(store)
    code, _, err = cli(store, "import", str(other), "-p", "m", "--format", "mlflow")
    assert code == 2
    assert err.strip() == (
        f"error: {other}: not an MLflow SQLite store (no experiments, runs, metrics and "
        "params tables)"
    )
    assert other.read_bytes() == data  # the client never opened it: no tables created
    assert contents(store) == before


def assert_reads_as_the_folder(store: Store, parsed: Any, mlruns: Path) -> None:
    """`parsed` (read from an unpacked zip) holds the points of `mlruns` imported as is."""
    assert cli(store, "import", str(mlruns), "-p", "m")[0] == 0
    assert sorted(parsed.points_table.select(["run", "split", "step", "lr", "loss"]).to_pylist(),
                  key=lambda r: (r["run"], r["split"], r["step"])) == [
        {"run": r, "split": s, "step": st, "lr": lr, "loss": loss}
        for r, s, st, _, lr, loss in points(store, "m")
    ]  # fmt: skip


def test_a_zipped_store_unpacked_for_upload_reads_as_the_folder(
    store: Store, written: dict[str, Path], tmp_path: Path
) -> None:
    from app.dashboard import staging
    from store.trackers import parse_runs

    # As `zip -r` makes it: with the folders (MLflow wants a run's empty artifacts/).
    mlruns = written["file"]
    archive = Path(shutil.make_archive(str(tmp_path / "mlruns"), "zip", mlruns.parent, "mlruns"))
    staged = staging.stage(tmp_path / "store-root", "mlruns.zip", archive.read_bytes())
    parsed = parse_runs(staging.unpack(staged))
    assert parsed.format == "mlflow"
    assert_reads_as_the_folder(store, parsed, mlruns)


def test_a_zip_without_folder_entries_reads_the_same(
    store: Store, written: dict[str, Path], tmp_path: Path
) -> None:
    """Archivers that store files only lose MLflow's empty `.trash/` and `artifacts/`:
    the reader adds them in a mirror, never in the user's folder."""
    import zipfile

    from app.dashboard import staging
    from store.trackers import parse_runs

    mlruns = written["file"]
    archive = tmp_path / "files-only.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for file in sorted(p for p in mlruns.rglob("*") if p.is_file()):
            out.write(file, str(file.relative_to(mlruns.parent)))
    assert not any(name.endswith("/") for name in zipfile.ZipFile(archive).namelist())
    staged = staging.stage(tmp_path / "store-root", archive.name, archive.read_bytes())
    unpacked = staging.unpack(staged)
    assert not (unpacked / ".trash").exists()
    parsed = parse_runs(unpacked)
    assert parsed.format == "mlflow"
    assert not (unpacked / ".trash").exists() and not list(unpacked.rglob("artifacts"))
    assert_reads_as_the_folder(store, parsed, mlruns)


def test_an_uploaded_zip_is_kept_in_the_store_and_named_by_its_rows(
    store: Store, written: dict[str, Path], tmp_path: Path
) -> None:
    """The unpacked folder goes after the import; the zip stays, so the upload row names
    a file that exists and can be imported again."""
    import hashlib

    from app.dashboard import staging
    from store.importers import import_files
    from store.trackers.write import Archive

    mlruns = written["file"]
    archive = Path(shutil.make_archive(str(tmp_path / "mlruns"), "zip", mlruns.parent, "mlruns"))
    payload = archive.read_bytes()
    staged = staging.stage(tmp_path / "store-root", "my runs.zip", payload)
    kept = Archive(staged.path, staged.sha256, staged.name)
    report = import_files(store, [staging.unpack(staged)], project="m", archive=kept)
    assert report.runs == 2
    staging.discard(staged)
    with store.connect(read_only=True) as con:
        rows = con.execute("SELECT original_name, path FROM uploads WHERE project = 'm'").fetchall()
    sha = hashlib.sha256(payload).hexdigest()
    assert rows == [("my runs.zip", f"{sha}.zip")]
    assert (store.uploads_dir / f"{sha}.zip").read_bytes() == payload
    assert not list(store.uploads_dir.glob(".partial*"))
    # The kept zip imports again, and adds nothing.
    again = staging.stage(tmp_path / "store-root", "again.zip", payload)
    before = contents(store)
    report = import_files(store, [staging.unpack(again)], project="m",
                          archive=Archive(again.path, again.sha256, again.name))  # fmt: skip
    assert report.runs == 0 and contents(store) == before


def test_a_failed_zip_import_keeps_nothing(
    store: Store, written: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.dashboard import staging
    from store.importers import import_files
    from store.trackers.write import Archive

    mlruns = written["file"]
    archive = Path(shutil.make_archive(str(tmp_path / "mlruns"), "zip", mlruns.parent, "mlruns"))
    staged = staging.stage(tmp_path / "store-root", "runs.zip", archive.read_bytes())
    before = contents(store)

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")  # the write fails after the copy was made

    monkeypatch.setattr("store.trackers.write._write_one", broken)
    with pytest.raises(OSError, match="disk full"):
        import_files(store, [staging.unpack(staged)], project="m",
                     archive=Archive(staged.path, staged.sha256, staged.name))  # fmt: skip
    assert contents(store) == before
    assert not any(store.uploads_dir.iterdir())
