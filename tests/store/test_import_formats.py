"""Each accepted CSV layout imports into the canonical schema; re-import is a no-op."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from store import Store, queries
from store.importers import import_files, parse_file
from tests.published import CHINCHILLA, GADRE_C4, LUO_25M

from .conftest import table_contents


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_long_with_aliases_and_blank_loss_on_lr_rows(tmp_path: Path) -> None:
    f = write(
        tmp_path / "runs.csv",
        "Run,Step,train/loss,learning_rate,tokens_seen,notes\n"
        "a,0,4.0,0.001,0,x\n"
        "a,1,,0.002,100,\n"
        "a,2,3.5,0.003,200,\n"
        "b,0,4.2,0.001,0,\n",
    )
    parsed = parse_file(f)
    assert parsed.format == "long"
    assert parsed.mapping == {
        "Run": "run",
        "Step": "step",
        "train/loss": "loss",
        "learning_rate": "lr",
        "tokens_seen": "tokens",
    }
    assert any("'train/loss' -> 'loss'" in w for w in parsed.warnings)
    assert any("ignored columns: 'notes'" in w for w in parsed.warnings)
    points = parsed.points
    assert list(points["run"]) == ["a", "a", "a", "b"]
    assert list(points["split"]) == ["train"] * 4
    assert math.isnan(points["loss"][1]) and points["lr"][1] == 0.002
    assert parsed.run_names == ["a", "b"]


def test_val_loss_alias_goes_to_eval_split_and_bits_convert(tmp_path: Path) -> None:
    f = write(tmp_path / "curve.csv", "step,val_loss\n10,2.0\n20,1.0\n")
    parsed = parse_file(f, bits=True)
    assert list(parsed.points["split"]) == ["eval", "eval"]
    assert parsed.points["loss"].tolist() == pytest.approx([2 * math.log(2), math.log(2)])
    assert parsed.run_names == ["curve"]  # no run column: the file's stem


def test_user_mapping_wins(tmp_path: Path) -> None:
    f = write(tmp_path / "odd.csv", "it,xent,model\n1,3.0,m1\n2,2.5,m1\n")
    parsed = parse_file(f, mapping={"it": "step", "xent": "loss"})
    assert parsed.format == "long" and parsed.run_names == ["m1"]
    assert parsed.points["step"].tolist() == [1, 2]


def test_wandb_export(tmp_path: Path) -> None:
    f = write(
        tmp_path / "wandb_export.csv",
        '"Step","run-a - train/loss","run-a - train/loss__MIN","run-a - train/loss__MAX",'
        '"run-b - train/loss","run-b - val/loss","run-a - _runtime"\n'
        "0,4.0,3.9,4.1,4.5,,1\n"
        "10,3.0,2.9,3.1,,3.9,2\n"
        "20,2.5,2.4,2.6,3.5,3.2,3\n",
    )
    parsed = parse_file(f)
    assert parsed.format == "wandb"
    got = {(r.run, r.split): [] for r in parsed.points.itertuples()}
    for r in parsed.points.itertuples():
        got[(r.run, r.split)].append((r.step, r.loss))
    assert got == {
        ("run-a", "train"): [(0, 4.0), (10, 3.0), (20, 2.5)],
        ("run-b", "train"): [(0, 4.5), (20, 3.5)],
        ("run-b", "eval"): [(10, 3.9), (20, 3.2)],
    }
    assert any("__MIN/__MAX" in w for w in parsed.warnings)
    assert any("_runtime" in w for w in parsed.warnings)


def test_tensorboard_export(tmp_path: Path) -> None:
    text = "Wall time,Step,Value\n1700000000.1,0,5.0\n1700000001.2,100,4.0\n"
    loss = parse_file(write(tmp_path / "run-gpt_small-tag-train_loss.csv", text))
    assert loss.format == "tensorboard" and loss.run_names == ["gpt_small"]
    assert loss.points["loss"].tolist() == [5.0, 4.0]
    lr = parse_file(write(tmp_path / "run-gpt_small-tag-learning_rate.csv", text))
    assert lr.points["lr"].tolist() == [5.0, 4.0] and lr.points["loss"].isna().all()
    plain = parse_file(write(tmp_path / "mymodel.csv", text))
    assert plain.run_names == ["mymodel"] and plain.points["split"].tolist() == ["train"] * 2


def test_table_of_final_losses(tmp_path: Path, store: Store) -> None:
    f = write(
        tmp_path / "paper.csv",
        "Model Size,Training FLOP,loss\n1e8,6e17,3.1\n4e8,2.4e18,2.9\n1e8,6e17,3.0\n",
    )
    parsed = parse_file(f)
    assert parsed.format == "table"
    assert parsed.run_names == ["N=1e+08,C=6e+17", "N=4e+08,C=2.4e+18", "N=1e+08,C=6e+17#2"]
    assert parsed.points["tokens"].tolist() == pytest.approx([1e9, 1e9, 1e9])
    assert parsed.points["step"].tolist() == [0, 0, 0]
    import_files(store, [f], project="paper")
    runs = queries.list_runs(store, "paper")
    assert sorted(runs["params"].tolist()) == [100_000_000, 100_000_000, 400_000_000]
    assert set(runs["status"]) == {"imported"} and runs["n_points"].eq(1).all()


def test_reimport_is_a_no_op_and_raw_file_kept(tmp_path: Path, store: Store) -> None:
    f = write(tmp_path / "c.csv", "run,step,loss\na,0,3.0\na,1,2.0\n")
    first = import_files(store, [f], project="p")
    assert first.points == 2 and not first.files[0].skipped
    before = table_contents(store)
    again = import_files(store, [f], project="p")
    assert again.files[0].skipped and again.points == 0
    assert table_contents(store) == before
    kept = store.uploads_dir / f"{first.files[0].sha256}.csv"
    assert kept.read_bytes() == f.read_bytes()
    # The same curves under another name: the points upsert, nothing is added.
    copy = write(tmp_path / "copy.csv", f.read_text() + "\n")
    import_files(store, [copy], project="p")
    assert table_contents(store)["points"] == before["points"]


def test_gadre_table(store: Store) -> None:
    """Gadre et al. 2024 (the C4-trained extract): 34 models x 8 validation sets, one point
    per (model, set)."""
    report = import_files(store, [GADRE_C4], project="gadre")
    assert report.runs == 34 and report.points == 272
    runs = queries.list_runs(store, "gadre")
    row = runs[runs["run"] == "c4_original-d=1024_l=24_h=8-0.25"].iloc[0]
    assert row["params"] == 411_616_256 and row["params_non_embedding"] == 359_973_888
    frame = queries.points_frame(store, "gadre")
    assert frame.groupby("run")["split"].nunique().eq(8).all()
    assert frame["tokens"].gt(0).all() and frame["step"].eq(0).all()


def test_chinchilla_table(store: Store) -> None:
    """Besiroglu et al.'s digitised Chinchilla points: N, C and loss; D = C / 6N."""
    report = import_files(store, [CHINCHILLA], project="chin")
    assert report.runs == 245 and report.points == 245
    frame = queries.points_frame(store, "chin")
    assert frame["tokens"].to_numpy() == pytest.approx(
        frame["flops"].to_numpy() / (6 * frame["params"].to_numpy(dtype=float)), rel=1e-6
    )
    assert frame["loss"].between(1.5, 8).all()


def test_luo_curves(store: Store) -> None:
    """Luo et al. 2025: `step, lr, loss` files, one run per file named from its stem."""
    files = sorted(LUO_25M.glob("*.csv"))
    report = import_files(store, files, project="luo25")
    runs = queries.list_runs(store, "luo25")
    assert sorted(runs["run"]) == sorted(f.stem for f in files)
    assert report.points == sum(len(f.read_text().splitlines()) - 1 for f in files)
    cosine = queries.points_frame(store, "luo25", runs=["cosine_24000"])
    assert cosine["step"].iloc[0] == 2160 and cosine["lr"].iloc[0] == pytest.approx(3e-4)
    assert cosine["step"].is_monotonic_increasing


def test_repeated_rows_that_agree_or_complement_merge(tmp_path: Path) -> None:
    f = write(
        tmp_path / "rep.csv",
        "run,step,loss,lr\na,0,3.0,\na,0,,0.1\na,1,2.0,0.1\na,1,2.0,0.1\n",
    )
    points = parse_file(f).points
    assert points[["step", "loss", "lr"]].values.tolist() == [[0, 3.0, 0.1], [1, 2.0, 0.1]]
