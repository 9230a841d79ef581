"""Fit exactly what you mean: splits, filters, exclusions, reductions, groups, ties.

Published data (tests/published.py, sources and cuts in tests/data/README.md):
Gadre et al. 2024 (mlfoundations/scaling, MIT), Besiroglu et al. 2024's Chinchilla points
(epoch-research/analyzing-chinchilla), Gordon et al. 2021 (mitchellgordon95/mt-scaling),
Li et al. 2025 (hadasah/scaling_laws).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import fitting
from fitting.constraints import group_table, parse_ties
from fitting.data import read_file
from fitting.errors import DataWarning, FitError
from fitting.jobs import final_losses
from fitting.selection import Selection, match_split, select
from fitting.where import evaluate, parse
from store.errors import BadInputError
from tests.published import CHINCHILLA, GADRE_C4, GADRE_THREE, GORDON_NMT

CHIN = fitting.LAWS["chinchilla"]


# --- the filter language ----------------------------------------------------------------


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run": ["a", "b", "c", "d"],
            "loss": [3.0, 4.6, np.nan, 2.5],
            "params": [1e6, 1e7, 1e8, 1e9],
            "tokens": [1e7, 2e7, 5e8, 1e10],
            "train_dataset": ["c4", "rpj", None, "c4"],
            "Model Size": [1, 2, 3, 4],
        }
    )


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        ("loss < 4.5", ["a", "d"]),
        ("tokens >= 5*params", ["a", "c", "d"]),
        ("train_dataset == 'c4'", ["a", "d"]),
        ("train_dataset != 'c4'", ["b"]),  # a missing value passes no comparison
        ("not loss < 4.5", ["b", "c"]),
        ("train_dataset in ('rpj', 'x') or `Model Size` >= 4", ["b", "d"]),
        ("log10(params) > 7.5 and loss > 0", ["d"]),
        ("-loss < -4 ", ["b"]),
        ("params ** 0.5 == 1000", ["a"]),
    ],
)
def test_filters_select_rows(table: pd.DataFrame, text: str, rows: list[str]) -> None:
    assert table.loc[evaluate(text, table), "run"].tolist() == rows


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("loss <", "expected a value, a column or '(', got the end at position 7"),
        ("loss < 3 < 4", "chain comparisons with 'and'"),
        ("__import__('os').system('true')", "unexpected character '.' at position 17"),
        ("loss; 3", "unexpected character ';' at position 5"),
        ("nope > 1", "no column 'nope' (known: Model Size, loss, params, run, tokens"),
        ("train_dataset + 1 > 2", "column 'train_dataset' holds text"),
        ("", "the filter is empty"),
        ("loss.__class__ == 1", "no column 'loss.__class__'"),
    ],
)
def test_bad_filters_say_where(table: pd.DataFrame, text: str, message: str) -> None:
    with pytest.raises(BadInputError) as err:
        evaluate(text, table)
    assert message in str(err.value)


def test_the_parser_builds_a_tree_of_known_nodes() -> None:
    tree = parse("tokens >= 5*params and not run in ('a', 'b')")
    kinds: set[str] = set()

    def walk(node) -> None:
        kinds.add(node.kind)
        for arg in node.args:
            walk(arg)

    walk(tree)
    assert kinds <= {"and", "cmp", "col", "bin", "num", "not", "in", "str"}


# --- splits -----------------------------------------------------------------------------


def test_without_a_split_the_error_lists_the_eight_splits() -> None:
    frame = read_file(GADRE_C4)
    with pytest.raises(BadInputError) as err:
        select(CHIN, frame)
    text = str(err.value)
    assert "the data hold 8 splits and law 'chinchilla' fits one: choose it with --split" in text
    for short in ("openlm", "c4_val", "paloma_c4_en", "paloma_ptb", "de-en", "paloma_redpajama"):
        assert f"\n  {short}  (training/eval_data/" in text


def test_split_names_match_exactly_by_part_or_uniquely() -> None:
    splits = ["train", "eval/c4_val/shard.tar", "eval/paloma_c4_en/1.tar"]
    assert match_split("train", splits) == "train"
    assert match_split("c4_val", splits) == "eval/c4_val/shard.tar"
    assert match_split("paloma", splits) == "eval/paloma_c4_en/1.tar"
    with pytest.raises(BadInputError, match="'c4' matches several splits"):
        match_split("c4", splits)
    with pytest.raises(BadInputError, match="'xx' is not a split of the data"):
        match_split("xx", splits)


def test_a_split_keeps_its_rows_and_says_what_it_dropped() -> None:
    picked = select(CHIN, read_file(GADRE_C4), Selection(split="c4_val"))
    assert len(picked.frame) == 34 and picked.frame["split"].nunique() == 1
    report = picked.report
    assert (report.rows_in, report.rows_used, report.runs_used) == (272, 34, 34)
    assert report.dropped == {f"not split {report.split!r}": 238}
    assert "c4_val" in report.split
    assert report.lines()[0] == f"data: 34 of 272 rows used (34 runs), split {report.split!r}"


def test_per_corpus_optimum_differs_from_the_pooled_one() -> None:
    """Gadre et al.'s three corpora on c4_val: tokens per parameter at 1e21 FLOPs per corpus
    (c4_original about 6.9) against the pooled fit's (about 8.8)."""
    frame = read_file(GADRE_THREE)
    pooled = fitting.fit("chinchilla", frame, split="c4_val")
    grouped = fitting.fit("chinchilla", frame, split="c4_val", group_by="train_dataset")
    assert pooled.n_points == 104 and grouped.n_points == 104
    assert grouped.options["groups"] == ["c4_original", "rpj", "rw_original"]
    assert grouped.checks["groups"] == {"c4_original": 34, "rpj": 35, "rw_original": 35}
    assert "c4_val" in grouped.selection["report"]["split"]

    def tokens_per_param(p: dict[str, float]) -> float:
        n, d, _ = CHIN.compute_optimum(p, np.array([1e21]))
        return float(d[0] / n[0])

    pooled_ratio = tokens_per_param(pooled.params)
    names, rows = group_table(grouped)
    assert names == ["E", "A", "B", "alpha", "beta"]
    ratios = {row["group"]: tokens_per_param(row) for row in rows}
    assert ratios["c4_original"] == pytest.approx(6.86, abs=0.05)
    assert pooled_ratio == pytest.approx(8.82, abs=0.05)
    assert all(abs(r - pooled_ratio) > 1.0 for r in ratios.values())


# --- filters, exclusions and the 240-point Chinchilla fit ---------------------------------


def _optimum_ratio(result) -> float:
    n, d, _ = CHIN.compute_optimum(result.params, np.array([1e23]))
    return float(d[0] / n[0])


def test_the_240_point_fit_from_the_245_row_file_by_where_and_by_exclude() -> None:
    frame = read_file(CHINCHILLA)
    assert len(frame) == 245
    everything = fitting.fit("chinchilla", frame)
    assert everything.params["B"] == pytest.approx(12846, rel=0.02)
    by_where = fitting.fit("chinchilla", frame, where="loss < 3.44")
    highest = frame.sort_values("loss")["run"].iloc[-5:].tolist()
    by_exclude = fitting.fit("chinchilla", frame, exclude=highest)
    for result in (by_where, by_exclude):
        assert result.n_points == 240
        assert result.params["B"] == pytest.approx(2143, rel=0.01)
        assert result.params["beta"] == pytest.approx(0.367, abs=0.002)
        assert _optimum_ratio(result) == pytest.approx(18.8, abs=0.1)
    assert by_where.selection["report"]["dropped"] == {"--where 'loss < 3.44' is false": 5}
    assert by_exclude.selection["report"]["dropped"] == {"--exclude": 5}
    assert by_exclude.selection["exclude"] == highest
    assert _optimum_ratio(everything) == pytest.approx(8.6, abs=0.2)


def test_exclude_names_a_run_the_data_lack() -> None:
    with pytest.raises(BadInputError, match="--exclude: no run 'm999' in the data"):
        select(CHIN, read_file(CHINCHILLA), {"exclude": "m999"})


def test_a_selection_that_leaves_nothing_says_why() -> None:
    with pytest.raises(FitError) as err:
        select(CHIN, read_file(CHINCHILLA), {"where": "loss > 100"})
    assert "leaves no row to fit (of 245 rows: 245 --where 'loss > 100' is false)" in str(err.value)


# --- reductions -------------------------------------------------------------------------


def _sweep() -> pd.DataFrame:
    """Two sizes, each trained at three LRs: curves of 3 points, the best LR lowest."""
    rows = []
    for n in (1e7, 1e8):
        for lr, offset in ((1e-3, 0.05), (3e-3, 0.0), (1e-2, 0.2)):
            for step in (100, 200, 300):
                rows.append(
                    {
                        "run": f"n{n:.0e}-lr{lr:g}",
                        "split": "train",
                        "step": step,
                        "params": n,
                        "tokens": 1e6 * step,
                        "lr": lr,
                        "loss": 2.0 + 50 / n**0.2 + 10 / step**0.3 + offset,
                    }
                )
    return pd.DataFrame(rows)


def test_reduce_final_best_and_checkpoints() -> None:
    frame = _sweep()
    final = select(CHIN, frame)
    assert len(final.frame) == 6 and set(final.frame["step"]) == {300}
    assert final.report.dropped == {"not a run's final loss": 12}
    best = select(CHIN, frame, {"reduce": "best"})
    assert sorted(best.frame["run"]) == ["n1e+07-lr0.003", "n1e+08-lr0.003"]
    assert best.report.dropped == {
        "not a run's final loss": 12,
        "not the lowest final loss of runs with the same N and D": 4,
    }
    points = select(CHIN, frame, {"checkpoints": True})
    assert len(points.frame) == 18 and points.report.rows_used == 18
    with pytest.raises(BadInputError, match="cannot be used with --reduce best"):
        Selection(checkpoints=True, reduce="best")
    with pytest.raises(BadInputError, match="fits whole loss curves; --reduce final"):
        select(fitting.LAWS["multi_power"], frame, {"reduce": "final"})


def test_jobs_final_losses_leave_a_diverged_run_out() -> None:
    """The jobs' final losses follow `fitting.data._final_rows`: a run whose last logged
    loss is NaN has no final loss (an earlier loss must not stand in for it)."""
    frame = pd.DataFrame(
        {
            "run": ["ok", "ok", "bad", "bad"],
            "split": "train",
            "step": [1, 2, 1, 2],
            "loss": [3.0, 2.9, 3.1, np.nan],
        }
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        picked = final_losses(frame)
    assert picked["run"].tolist() == ["ok"] and picked["loss"].tolist() == [2.9]
    assert any(
        issubclass(w.category, DataWarning) and "'bad / train'" in str(w.message) for w in caught
    )
    assert "bad / train" in picked.attrs["excluded_runs"]


# --- tied and shared parameters on known truth --------------------------------------------


def _grid_frame(rng: np.random.Generator, truth: dict[str, float], tag: str = "") -> pd.DataFrame:
    n, d = np.meshgrid(np.geomspace(1e7, 1e10, 6), np.geomspace(1e9, 1e12, 6))
    frame = pd.DataFrame({"params": n.ravel(), "tokens": d.ravel()})
    theta = np.array([[truth[p] for p in ("E", "A", "B", "alpha", "beta")]])
    clean = CHIN.predict(theta, CHIN.prepare(frame, for_fit=False))[0]
    frame["loss"] = clean * np.exp(rng.normal(0.0, 0.002, len(frame)))
    frame["run"] = [f"{tag}{i}" for i in range(len(frame))]
    return frame


def test_tie_recovers_one_exponent_and_counts_it_once() -> None:
    truth = {"E": 1.8, "A": 400.0, "B": 600.0, "alpha": 0.31, "beta": 0.31}
    frame = _grid_frame(np.random.default_rng(3), truth)
    tied = fitting.fit("chinchilla", frame, tie="alpha=beta")
    assert tied.params["alpha"] == tied.params["beta"]
    assert tied.params["alpha"] == pytest.approx(0.31, abs=3 * tied.stderr["alpha"] + 1e-3)
    assert tied.free == ["E", "A", "B", "alpha"] and tied.options["tie"] == {"beta": "alpha"}
    assert tied.stderr["beta"] == tied.stderr["alpha"] > 0
    assert "(tied to alpha)" in tied.report()
    free = fitting.fit("chinchilla", frame)
    n = tied.n_points
    rss_t = float(np.square(tied.residuals).sum())
    assert tied.aic == pytest.approx(n * np.log(rss_t / n) + 2 * 4)
    assert free.aic - 2 * 5 != pytest.approx(tied.aic - 2 * 4)  # one parameter fewer
    # Five points: four free parameters are fittable once two are tied.
    five = frame.iloc[[0, 7, 14, 21, 35]]
    with pytest.raises(FitError, match="too few points"):
        fitting.fit("chinchilla", five)
    assert fitting.fit("chinchilla", five, tie="alpha=beta").n_points == 5
    lo, hi = tied.predict_band(frame.iloc[:3])
    assert (hi > lo).all()


def test_bad_ties_are_refused() -> None:
    assert parse_ties("a=b=c") == {"b": "a", "c": "a"}
    frame = _grid_frame(
        np.random.default_rng(0), {"E": 1.8, "A": 400, "B": 600, "alpha": 0.3, "beta": 0.3}
    )
    with pytest.raises(FitError, match="cannot tie 'gamma'"):
        fitting.fit("chinchilla", frame, tie="alpha=gamma")
    with pytest.raises(FitError, match="both fixed and tied"):
        fitting.fit("chinchilla", frame, tie="alpha=beta", fix={"beta": 0.3})
    with pytest.raises(FitError, match="log scale"):
        fitting.fit("chinchilla", frame, tie="A=alpha")


def test_share_recovers_common_exponents_and_separate_constants() -> None:
    rng = np.random.default_rng(7)
    truths = {
        "c4": {"E": 1.8, "A": 400.0, "B": 900.0, "alpha": 0.33, "beta": 0.36},
        "rpj": {"E": 2.1, "A": 700.0, "B": 1500.0, "alpha": 0.33, "beta": 0.36},
        "rw": {"E": 1.6, "A": 300.0, "B": 600.0, "alpha": 0.33, "beta": 0.36},
    }
    frame = pd.concat(
        [_grid_frame(rng, t, g).assign(corpus=g) for g, t in truths.items()], ignore_index=True
    )
    shared = fitting.fit("chinchilla", frame, group_by="corpus", share=["alpha", "beta"])
    assert shared.free[:2] == ["alpha", "beta"] and len(shared.params) == 2 + 3 * 3
    for name in ("alpha", "beta"):
        assert shared.params[name] == pytest.approx(truths["c4"][name], abs=3 * shared.stderr[name])
    for group, truth in truths.items():
        for name in ("E", "A"):
            key = f"{group}.{name}"
            assert shared.params[key] == pytest.approx(truth[name], abs=3 * shared.stderr[key])
    # Saved and loaded, the fit predicts each row with its own group's constants.
    back = fitting.FitResult.from_json(shared.to_json())
    np.testing.assert_allclose(back.predict(frame), shared.predict(frame))
    with pytest.raises(FitError, match="not one of the fitted groups"):
        back.predict(frame.iloc[:1].assign(corpus="other"))
    # Without share: independent groups, each its own exponents.
    alone = fitting.fit("chinchilla", frame, group_by="corpus")
    assert {"c4.alpha", "rpj.alpha", "rw.alpha"} <= set(alone.params)
    with pytest.raises(FitError, match="cannot share 'gamma'"):
        fitting.fit("chinchilla", frame, group_by="corpus", share=["gamma"])


def test_group_by_gives_one_fit_per_language_on_the_nmt_table() -> None:
    """Gordon et al. 2021: data scaling per language pair (D = bytes of text, the loss
    the dev cross-entropy), on rows above 5 MiB of data, as the authors filter."""
    frame = read_file(GORDON_NMT, mapping={"ent_dev": "loss", "data_bytes": "tokens"})
    assert "Lang" in frame.columns and "ModelSize" in frame.columns  # kept as run facts
    result = fitting.fit(
        "power_law",
        frame,
        x="tokens",
        group_by="Lang",
        where="tokens > 5 * 2**20 and ModelSize == 512",
    )
    assert result.options["groups"] == ["deen", "ruen", "zhen"]
    names, rows = group_table(result)
    assert names == ["L_inf", "x0", "alpha"] and [r["group"] for r in rows] == [
        "deen",
        "ruen",
        "zhen",
    ]
    assert all(0.3 < r["alpha"] < 1.2 for r in rows)
    assert sum(r["points"] for r in rows) == result.n_points
