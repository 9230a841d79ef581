"""W&B chart exports as they really come (issue 19): another x axis with per-run `_step`
columns, grouped runs, blank columns, several metrics per run. Each file is written here
in the header style W&B uses (every field quoted, a blank cell as `""`), imported with
the real CLI, and previewed on the dashboard's Upload page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import cli as command
from app.dashboard.safetext import md
from store import Store, queries

from .conftest import table_contents

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def wandb_csv(header: list[str], rows: list[list[str]]) -> str:
    """A CSV as W&B writes it: every field quoted."""
    lines = [",".join(f'"{cell}"' for cell in row) for row in [header, *rows]]
    return "\n".join(lines) + "\n"


def band(run: str, metric: str) -> list[str]:
    return [f"{run} - {metric}", f"{run} - {metric}__MIN", f"{run} - {metric}__MAX"]


def with_band(*values: str) -> list[str]:
    """Each value with its __MIN/__MAX copies (blank stays blank)."""
    return [v for value in values for v in (value, value, value)]


EPOCH_X = wandb_csv(
    ["epoch", *band("playful-sun-1763", "_step"), *band("playful-sun-1763", "train/loss"),
     *band("calm-sea-12", "_step"), *band("calm-sea-12", "train/loss")],
    [
        ["0", *with_band("0", "10.8"), *with_band("0", "10.9")],
        ["1", *with_band("500", "4.2"), *with_band("", "")],
        ["2", *with_band("1000", "3.9"), *with_band("800", "4.0")],
    ],
)  # fmt: skip
TOKENS_X = wandb_csv(
    ["train/tokens_seen", *band("r1", "_step"), *band("r1", "train/loss")],
    [["0", *with_band("0", "10.8")], ["2048000", *with_band("500", "4.2")]],
)
GROUPED = wandb_csv(
    ["Step", *band("Group: lr-3e-4", "train/loss"), *band("Group: lr-1e-3", "train/loss")],
    [["0", *with_band("10.8", "10.7")], ["100", *with_band("6.1", "")]],
)
EMPTY_COLUMN = wandb_csv(
    ["Step", "", "r - train/loss", "r - train/loss__MIN", "r - train/loss__MAX"],
    [["0", "", "3.0", "2.9", "3.1"], ["10", "", "2.0", "1.9", "2.1"]],
)
METRICS = wandb_csv(
    ["Step", "r - train/loss", "r - eval/loss", "r - train/grad_norm", "r - train/lr"],
    [["0", "3.0", "3.2", "1.5", "0.001"], ["10", "2.0", "", "0.9", "0.001"]],
)


def cli(store: Store, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(command, [*args, "--store", str(store.root)])
    return result.exit_code, result.stdout, result.stderr


def import_text(store: Store, tmp_path: Path, name: str, text: str, *extra: str) -> dict:
    path = tmp_path / name
    path.write_text(text)
    code, out, err = cli(store, "import", str(path), "--project", "w", "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def points(store: Store) -> list[tuple[Any, ...]]:
    """(run, split, step, tokens, lr, loss) of project 'w', blanks as None."""
    frame = queries.points_frame(store, "w")
    frame = frame.astype(object).where(frame.notna(), None)
    return [(r.run, r.split, int(r.step), r.tokens, r.lr, r.loss) for r in frame.itertuples()]


def test_another_x_axis_takes_each_runs_own_step(tmp_path: Path, store: Store) -> None:
    report = import_text(store, tmp_path, "epoch.csv", EPOCH_X)
    assert (report["runs"], report["points"]) == (2, 5)
    assert report["files"][0]["warnings"] == [
        "x axis 'epoch' ignored (each run's '_step' is its step; only a tokens or flops x is kept)",
        "ignored 8 __MIN/__MAX columns",
    ]
    got = [(run, split, step, loss) for run, split, step, _, _, loss in points(store)]
    assert got == [
        ("calm-sea-12", "train", 0, 10.9),
        ("calm-sea-12", "train", 800, 4.0),
        ("playful-sun-1763", "train", 0, 10.8),
        ("playful-sun-1763", "train", 500, 4.2),
        ("playful-sun-1763", "train", 1000, 3.9),
    ]


def test_a_tokens_x_axis_is_kept_as_tokens(tmp_path: Path, store: Store) -> None:
    report = import_text(store, tmp_path, "tokens.csv", TOKENS_X)
    assert (
        "x axis 'train/tokens_seen' read as tokens; each run's '_step' is its step"
        in (report["files"][0]["warnings"])
    )
    assert [(s, t) for _, _, s, t, _, _ in points(store)] == [(0, 0.0), (500, 2048000.0)]


def test_a_value_without_its_runs_step_is_refused(tmp_path: Path, store: Store) -> None:
    before = table_contents(store)
    bad = EPOCH_X.replace('"2","1000","1000","1000"', '"2","","",""')
    path = tmp_path / "no_step.csv"
    path.write_text(bad)
    code, _, err = cli(store, "import", str(path), "--project", "w")
    assert (code, err) == (
        2,
        "error: no_step.csv, line 4, column 'playful-sun-1763 - _step': expected a "
        "non-negative integer step, got ''\n",
    )
    assert table_contents(store) == before


def test_another_x_axis_without_step_columns_is_refused(tmp_path: Path, store: Store) -> None:
    text = wandb_csv(["epoch", "r - _step", "r - train/loss", "q - train/loss"], [["0"] * 4])
    path = tmp_path / "missing.csv"
    path.write_text(text)
    code, _, err = cli(store, "import", str(path), "--project", "w", "--format", "wandb")
    assert (code, err) == (
        2,
        "error: missing.csv, line 1: the x axis 'epoch' is not the step, so every run needs "
        "its '<run> - _step' column; none for ['q']\n",
    )


def test_grouped_runs_are_stored_as_the_group_and_marked(tmp_path: Path, store: Store) -> None:
    report = import_text(store, tmp_path, "grouped.csv", GROUPED)
    assert (report["runs"], report["points"]) == (2, 3)
    assert (
        "grouped runs (each curve is the mean of its runs; marked grouped): "
        "'Group: lr-1e-3', 'Group: lr-3e-4'" in report["files"][0]["warnings"]
    )
    runs = queries.list_runs(store, "w")
    sources = {r.run: json.loads(r.source) for r in runs.itertuples()}
    assert set(sources) == {"Group: lr-3e-4", "Group: lr-1e-3"}
    assert {s["grouped"] for s in sources.values()} == {"mean of its runs"}
    assert [(r, s) for r, _, s, _, _, _ in points(store)] == [
        ("Group: lr-1e-3", 0),
        ("Group: lr-3e-4", 0),
        ("Group: lr-3e-4", 100),
    ]


def test_ungrouped_runs_carry_no_group_mark(tmp_path: Path, store: Store) -> None:
    import_text(store, tmp_path, "metrics.csv", METRICS)
    source = json.loads(queries.list_runs(store, "w")["source"][0])
    assert "grouped" not in source and source["format"] == "wandb"


def test_a_blank_column_without_values_is_dropped(tmp_path: Path, store: Store) -> None:
    report = import_text(store, tmp_path, "blank.csv", EMPTY_COLUMN)
    assert report["points"] == 2
    assert "dropped column 2: no name, no values" in report["files"][0]["warnings"]


def test_a_blank_column_with_values_stays_an_error(tmp_path: Path, store: Store) -> None:
    before = table_contents(store)
    path = tmp_path / "blank_values.csv"
    path.write_text(EMPTY_COLUMN.replace('"10","",', '"10","7",'))
    code, _, err = cli(store, "import", str(path), "--project", "w")
    assert (code, err) == (
        2,
        "error: blank_values.csv, line 3: the header has no name for column 2, which holds "
        "values (got '7'); expected a name for every column with values\n",
    )
    assert table_contents(store) == before
    assert list(store.uploads_dir.iterdir()) == []


def test_a_blank_column_in_a_long_file_is_dropped_too(tmp_path: Path, store: Store) -> None:
    report = import_text(store, tmp_path, "trailing.csv", "run,step,loss,\na,0,3.0,\n")
    assert report["points"] == 1
    assert "dropped column 4: no name, no values" in report["files"][0]["warnings"]


def test_several_metrics_of_a_run_become_splits(tmp_path: Path, store: Store) -> None:
    report = import_text(store, tmp_path, "metrics.csv", METRICS)
    assert report["files"][0]["warnings"] == [
        "ignored columns (not a loss or an LR; --map COLUMN=loss reads one): 'r - train/grad_norm'"
    ]
    assert points(store) == [
        ("r", "eval", 0, None, None, 3.2),
        ("r", "train", 0, None, 0.001, 3.0),
        ("r", "train", 10, None, 0.001, 2.0),
    ]


def test_map_reads_another_metric_as_the_loss(tmp_path: Path, store: Store) -> None:
    report = import_text(
        store, tmp_path, "metrics.csv", METRICS, "--map", "r - train/grad_norm=loss"
    )
    assert report["files"][0]["warnings"] == [
        "ignored columns (not a loss or an LR; --map COLUMN=loss reads one): 'r - train/loss'"
    ]
    train = [(s, loss) for _, split, s, _, _, loss in points(store) if split == "train"]
    assert train == [(0, 1.5), (10, 0.9)]


def test_map_to_a_field_a_series_cannot_hold_is_refused(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text(METRICS)
    code, _, err = cli(
        store, "import", str(path), "--project", "w", "--map", "r - train/grad_norm=params"
    )
    assert (code, err) == (
        2,
        "error: metrics.csv, line 1: --map can read the series 'r - train/grad_norm' as one "
        "of ['loss', 'lr'], not 'params'\n",
    )


# --- the Upload page previews each shape ----------------------------------------------------


@pytest.fixture
def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SCALINGLAB_STORE", str(tmp_path / "page-store"))
    monkeypatch.delenv("SCALINGLAB_SCHEDULER", raising=False)

    def drop(name: str, text: str) -> Any:
        at = AppTest.from_file(
            str(REPO / "app" / "dashboard" / "streamlit_app.py"), default_timeout=60
        ).run()
        at.switch_page("views/upload.py").run()
        at.file_uploader(key="upload-files").set_value((name, text.encode(), "text/csv")).run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        return at

    return drop


@pytest.mark.parametrize(
    ("name", "text", "runs", "n_points"),
    [
        ("epoch.csv", EPOCH_X, ["playful-sun-1763", "calm-sea-12"], 5),
        ("tokens.csv", TOKENS_X, ["r1"], 2),
        ("grouped.csv", GROUPED, ["Group: lr-3e-4", "Group: lr-1e-3"], 3),
        ("blank.csv", EMPTY_COLUMN, ["r"], 2),
        ("metrics.csv", METRICS, ["r"], 3),
    ],
    ids=["epoch-x", "tokens-x", "grouped", "blank-column", "metrics"],
)
def test_upload_page_previews_each_shape(
    page: Any, name: str, text: str, runs: list[str], n_points: int
) -> None:
    at = page(name, text)
    success = [s.value for s in at.success]
    assert success == [f"Detected format: **wandb** · {len(runs)} run(s), {n_points:,} point(s)"]
    preview, run_table = at.dataframe[0].value, at.dataframe[1].value
    assert len(preview) == n_points and list(run_table["run"]) == runs
    if name == "grouped.csv":
        assert list(run_table["grouped"]) == [True, True]
    boxes = {s.label for s in at.selectbox if s.key and "-map-" in s.key}
    # Only a metric the import leaves out is offered for mapping (no bands, no steps).
    assert boxes == ({md("r - train/grad_norm")} if name == "metrics.csv" else set())
