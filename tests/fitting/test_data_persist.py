"""Fit frames from a real store and from files, and fits saved to and loaded from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fitting
from fitting.data import load_project, read_file, select_for_law
from fitting.errors import FitError
from fitting.persist import load_result, save_result
from store.core import Store
from store.errors import BadInputError
from store.inbox import InboxWriter

SIZES = [2e6, 5e6, 1.2e7, 3e7, 8e7, 2e8]


def _loss(n: float, d: float) -> float:
    return 1.8 + 480.0 / n**0.35 + 2000.0 / d**0.37


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Six runs: train curves with tokens, eval losses every 50 steps without tokens."""
    s = Store(tmp_path_factory.mktemp("store"))
    for i, n in enumerate(SIZES):
        with InboxWriter(s, "sweep", f"r{i}", facts={"params": int(n)}) as w:
            for step in range(0, 201, 10):
                d = 1e3 * (step + 1) * n / 1e6
                w.log(step, loss=_loss(n, d) + 0.01, tokens=d, lr=1e-3)
                if step % 50 == 0 and step:
                    w.log(step, split="eval", loss=_loss(n, d))
    return s


def test_points_law_fits_each_runs_final_eval_loss(store: Store) -> None:
    frame = load_project(store, "sweep")
    law = fitting.LAWS["chinchilla"]
    picked = select_for_law(law, frame)
    assert len(picked) == len(SIZES)
    assert set(picked["split"]) == {"eval"} and set(picked["step"]) == {200}
    for _, row in picked.iterrows():
        d = 1e3 * 201 * row["params"] / 1e6
        assert row["tokens"] == pytest.approx(d)  # carried over from the train rows
        assert row["loss"] == pytest.approx(_loss(row["params"], d))
        assert row["flops"] == pytest.approx(6 * row["params"] * d)


def test_runs_selection_and_missing_runs(store: Store) -> None:
    frame = load_project(store, "sweep", ["r0", "r1", "r2", "r3"])
    assert sorted(frame["run"].unique()) == ["r0", "r1", "r2", "r3"]
    with pytest.raises(FitError, match="no run 'nope'"):
        load_project(store, "sweep", ["r0", "nope"])
    with pytest.raises(FitError, match="no points"):
        load_project(store, "empty-project")


def test_train_only_runs_use_their_last_train_loss(store: Store) -> None:
    frame = load_project(store, "sweep")
    frame = frame[frame["split"] == "train"]
    picked = select_for_law(fitting.LAWS["power_law"], frame, x="params")
    assert len(picked) == len(SIZES) and set(picked["step"]) == {200}
    steps = select_for_law(fitting.LAWS["power_law"], frame, x="step")
    assert len(steps) == len(frame)


def test_save_and_load_a_fit(store: Store) -> None:
    picked = select_for_law(fitting.LAWS["power_law"], load_project(store, "sweep"))
    result = fitting.fit("power_law", picked, x="params")
    fit_id = save_result(store, result, "sweep", {"project": "sweep", "runs": None})
    back = load_result(store, fit_id)
    assert back == result
    assert back.selection == {"project": "sweep", "runs": None}
    np.testing.assert_array_equal(back.predict(picked), result.predict(picked))
    from store.fits import list_fits

    listed = list_fits(store, project="sweep", law="power_law")
    assert fit_id in set(listed["id"])
    assert listed.loc[listed["id"] == fit_id, "data_hash"].iloc[0] == result.data_hash


def test_read_a_table_file(tmp_path: Path) -> None:
    truth, frame = fitting.LAWS["chinchilla"].example(np.random.default_rng(0))
    path = tmp_path / "table.csv"
    frame.assign(model=[f"m{i}" for i in range(len(frame))]).to_csv(path, index=False)
    loaded = read_file(path)
    picked = select_for_law(fitting.LAWS["chinchilla"], loaded)
    assert len(picked) == len(frame)
    result = fitting.fit("chinchilla", picked)
    assert result.params["alpha"] == pytest.approx(truth["alpha"], abs=0.05)


def test_multilingual_keeps_one_row_per_run_and_family() -> None:
    rows = []
    for run, n in (("a", 1e7), ("b", 1e8)):
        for fam, p in (("en", 0.7), ("zh", 0.3)):
            for step in (10, 20):
                rows.append(
                    {
                        "run": run,
                        "split": f"eval/{fam}",
                        "step": step,
                        "params": n,
                        "tokens": 1e9 * step,
                        "family": fam,
                        "sampling_ratio": p,
                        "loss": 3.0 - step / 100,
                    }
                )
        rows.append(
            {"run": run, "split": "train", "step": 20, "params": n, "tokens": 2e10, "loss": 2.5}
        )
    picked = select_for_law(fitting.LAWS["multilingual"], pd.DataFrame(rows))
    assert len(picked) == 4 and set(picked["step"]) == {20}
    assert set(zip(picked["run"], picked["family"], strict=True)) == {
        ("a", "en"),
        ("a", "zh"),
        ("b", "en"),
        ("b", "zh"),
    }


def test_curve_laws_get_every_row() -> None:
    curve = [law for law in fitting.LAWS.values() if law.kind == "curves"]
    frame = pd.DataFrame(
        {"run": "a", "step": [0, 1, 2], "lr": [1e-3] * 3, "loss": [np.nan, 3.0, 2.9]}
    )
    for law in curve:
        assert len(select_for_law(law, frame)) == 3
    with pytest.raises(FitError, match="no data"):
        select_for_law(fitting.LAWS["chinchilla"], frame.iloc[:0])


def test_run_facts_join_the_frame_and_select_rows(store: Store) -> None:
    from fitting.selection import select
    from store.runfacts import facts_frame, set_facts

    facts = {f"r{i}": {"corpus": "c4" if i % 2 else "rpj", "width": 64 * (i + 1)} for i in range(6)}
    assert set_facts(store, "sweep", facts) == 12
    assert set(facts_frame(store, "sweep")["corpus"]) == {"c4", "rpj"}
    frame = load_project(store, "sweep")
    assert frame.groupby("run")["width"].first().to_dict() == {
        f"r{i}": 64 * (i + 1) for i in range(6)
    }
    picked = select(fitting.LAWS["chinchilla"], frame, {"where": "corpus == 'c4' and width > 128"})
    assert sorted(picked.frame["run"]) == ["r3", "r5"]
    assert picked.report.dropped == {
        "not a run's final loss": len(frame) - 6,
        "--where \"corpus == 'c4' and width > 128\" is false": 4,
    }
    grouped = select(fitting.LAWS["chinchilla"], frame, {"group_by": "corpus"})
    assert grouped.report.groups == {"c4": 3, "rpj": 3}
    with pytest.raises(BadInputError, match="project 'sweep' has no run 'r9'"):
        set_facts(store, "sweep", {"r9": {"corpus": "x"}})
    listed = load_project(store, "sweep")
    assert "r9" not in set(listed["run"])  # nothing written by the refused call


def test_a_saved_fit_keeps_its_selection(store: Store) -> None:
    frame = load_project(store, "sweep")
    result = fitting.fit("power_law", frame, x="params", where="params > 3e6")
    assert result.selection["where"] == ["params > 3e6"]
    assert result.selection["report"]["rows_used"] == 5
    fit_id = save_result(store, result, "sweep")
    back = load_result(store, fit_id)
    assert back.selection == result.selection
