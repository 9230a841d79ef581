"""The curve laws' inputs (per-step LR, S1, S2, the binned loss drop) and the two laws."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fitting.errors import FitError
from fitting.laws.curve_support import (
    RunLR,
    area,
    curve_rows,
    exact_loss_drop,
    loss_drop_terms,
    momentum_area,
    run_lrs,
)
from fitting.laws.lr_annealing import LrAnnealing
from fitting.laws.multi_power import MultiPower
from fitting.schedules import ScheduleSpec

COSINE = "cosine:peak=1e-3,warmup=100,total=2000,final=1e-4"
WSD = "wsd:peak=1e-3,warmup=100,total=2000,final=1e-4,decay=500,shape=exponential"


def _frame(spec_text: str, every: int, run: str = "r", dense_lr: bool = False) -> pd.DataFrame:
    """A run logged like a real trainer: loss every ``every`` steps, LR every step or not."""
    spec = ScheduleSpec.parse(spec_text)
    steps = np.arange(0, spec.total_steps + 1) if dense_lr else np.arange(every, 2001, every)
    loss = np.where(steps % every == 0, 3.0 + 1.0 / np.sqrt(steps + 1.0), np.nan)
    return pd.DataFrame({"run": run, "step": steps, "lr": spec.lr(steps), "loss": loss})


# -- where the per-step LR comes from -------------------------------------------------------


def test_dense_lr_column_is_used_as_is() -> None:
    frame = _frame(COSINE, 50, dense_lr=True)
    runs, notes = run_lrs(frame)
    assert runs["r"].source == "dense" and notes == []
    np.testing.assert_array_equal(runs["r"].lr, ScheduleSpec.parse(COSINE).dense())
    assert runs["r"].warmup_steps == 100  # detected: the rise to the peak


def test_schedule_from_options_then_from_the_run_column() -> None:
    frame = _frame(COSINE, 50)
    runs, _ = run_lrs(frame, {"r": ScheduleSpec.parse(COSINE)})
    assert runs["r"].source == "schedule" and runs["r"].warmup_steps == 100
    np.testing.assert_array_equal(runs["r"].lr, ScheduleSpec.parse(COSINE).dense())
    frame["schedule"] = ScheduleSpec.parse(WSD).to_json()  # as the store records it
    runs, _ = run_lrs(frame)
    np.testing.assert_array_equal(runs["r"].lr, ScheduleSpec.parse(WSD).dense())
    runs, _ = run_lrs(frame, {"r": COSINE})  # options win over the column
    np.testing.assert_array_equal(runs["r"].lr, ScheduleSpec.parse(COSINE).dense())


def test_sparse_lr_is_interpolated_with_a_note() -> None:
    frame = _frame("linear:peak=1e-3,total=2000,final=0", 50)
    runs, notes = run_lrs(frame)
    assert runs["r"].source == "interpolated" and "interpolated" in notes[0]
    exact = ScheduleSpec.parse("linear:peak=1e-3,total=2000,final=0").dense()
    # Exact where the schedule is linear (after the first logged step).
    np.testing.assert_allclose(runs["r"].lr[50:], exact[50:], rtol=1e-12)
    assert runs["r"].lr[0] == 0.0  # rises from 0 before the first logged step


def test_missing_lr_and_bad_steps_are_clear_errors() -> None:
    frame = pd.DataFrame({"run": "a", "step": [10, 20], "loss": [3.0, 2.9]})
    with pytest.raises(FitError, match="run 'a': the LR is unknown"):
        run_lrs(frame)
    frame["lr"] = 1e-3
    frame["step"] = [10.0, 2.5]
    with pytest.raises(FitError, match="step must be a whole number"):
        run_lrs(frame)
    frame = pd.DataFrame({"run": "a", "step": [10], "loss": [3.0], "schedule": ["cosine:peak=x"]})
    with pytest.raises(FitError, match="run 'a'"):
        run_lrs(frame)


def test_lr_only_rows_feed_the_sums_but_are_not_fit_points() -> None:
    frame = _frame(COSINE, 100, dense_lr=True)
    cur = curve_rows(frame, "lr_annealing", for_fit=True)
    assert cur.fit_mask.sum() == 21 and len(cur.steps) == 2001
    prep = LrAnnealing().prepare(frame)
    assert prep.n_points == 20  # step 0 has no LR area yet: not a fit point
    assert "before any LR area" in prep.extra["notes"][0]


# -- S1 and S2 against closed forms ---------------------------------------------------------


def test_s1_counts_the_warmup_unless_told_not_to() -> None:
    spec = ScheduleSpec.parse("constant:peak=1e-3,warmup=100,total=1000")
    run = RunLR("r", 0, spec.dense(), spec.warmup_steps, "schedule")
    s1 = area(run)
    assert s1[99] == pytest.approx(1e-3 * 99 / 2)  # sum of 1e-3 * s / 100, s < 100
    assert s1[1000] == pytest.approx(1e-3 * (99 / 2 + 901))
    assert area(run, include_warmup=False)[1000] == pytest.approx(1e-3 * 901)


def test_s2_of_a_single_drop_is_a_geometric_sum() -> None:
    # One drop of 6e-4 at step 500: m_i = 6e-4 * lam^(i - 500), S2 = sum of those.
    spec = ScheduleSpec.parse("multistep:peak=1e-3,warmup=100,total=2000,milestones=500,gamma=0.4")
    run = RunLR("r", 0, spec.dense(), spec.warmup_steps, "schedule")
    lam, t = 0.99, np.arange(2001)
    expected = np.where(t >= 500, 6e-4 * (1 - lam ** (t - 499)) / (1 - lam), 0.0)
    np.testing.assert_allclose(momentum_area(run, lam), expected, atol=1e-15)
    flat = ScheduleSpec.parse("constant:peak=1e-3,warmup=100,total=2000")
    assert not momentum_area(RunLR("c", 0, flat.dense(), 100, "schedule")).any()
    with pytest.raises(FitError, match="lam"):
        momentum_area(run, 1.0)


# -- the binned loss drop against the exact double sum -------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        COSINE,
        WSD,
        "linear:peak=1e-3,warmup=50,total=2000,final=0",  # reaches LR 0
        "multistep:peak=1e-3,warmup=100,total=2000,milestones=600;1200,gamma=0.3",
        "wsd:peak=3e-4,warmup=2160,total=24000,final=3e-5,decay=4000,shape=exponential",
    ],
)
@pytest.mark.parametrize("ld_warmup", [True, False])
def test_binned_loss_drop_matches_the_exact_sum(text: str, ld_warmup: bool) -> None:
    spec = ScheduleSpec.parse(text)
    run = RunLR("r", 0, spec.dense(), spec.warmup_steps, "schedule")
    steps = np.unique(np.r_[1, 2, np.linspace(1, spec.total_steps, 60).round()]).astype(int)
    params = {"b": 400.0, "c": 2.0, "beta": 0.6, "gamma": 0.6}
    exact = exact_loss_drop(run, steps, **params, include_warmup=ld_warmup)
    terms = loss_drop_terms(run, steps, include_warmup=ld_warmup)
    binned, _ = terms.drop(*(np.array([v]) for v in params.values()))
    np.testing.assert_allclose(binned[0], exact, atol=1e-4 * np.abs(exact).max(), rtol=0)
    assert terms.weight.size < 0.2 * (steps.size * spec.total_steps)  # far fewer terms


# -- the two laws ------------------------------------------------------------------------


@pytest.mark.parametrize("law", [LrAnnealing(), MultiPower()], ids=lambda law: law.name)
def test_analytic_gradient_matches_finite_differences(law) -> None:
    truth, frame = law.example(np.random.default_rng(1))
    prep = law.prepare(frame)
    theta = np.array([list(truth.values()), [v * 1.1 for v in truth.values()]])
    grad = law.gradient(theta, prep)
    for j in range(theta.shape[1]):
        h = 1e-6 * np.abs(theta[:, j])
        up, down = theta.copy(), theta.copy()
        up[:, j] += h
        down[:, j] -= h
        fd = (law.predict(up, prep) - law.predict(down, prep)) / (2 * h[:, None])
        np.testing.assert_allclose(grad[:, :, j], fd, rtol=1e-5, atol=1e-8 * np.abs(fd).max())


@pytest.mark.parametrize("law", [LrAnnealing(), MultiPower()], ids=lambda law: law.name)
def test_dense_and_sparse_frames_give_the_same_predictions(law) -> None:
    theta = np.array([list(law.example(np.random.default_rng(0))[0].values())])
    dense = _frame(WSD, 100, dense_lr=True)
    sparse = dense[dense["loss"].notna() & (dense["step"] > 0)].drop(columns="lr")
    sparse = sparse.assign(schedule=WSD)
    p_dense = law.predict(theta, law.prepare(dense))[0]
    p_sparse = law.predict(theta, law.prepare(sparse))[0]
    np.testing.assert_allclose(p_dense[sparse.index], p_sparse, rtol=1e-10)
    assert np.isfinite(p_dense).all()


def test_multi_power_interpolates_ld_between_evaluation_steps() -> None:
    law, frame = MultiPower(), _frame(COSINE, 100, dense_lr=True)
    theta = np.array([list(law.example(np.random.default_rng(0))[0].values())])
    full = law.predict(theta, law.prepare(frame, for_fit=False))[0]
    # Predicting with max_eval=100; fitting (LD at the fit points only, every 100 steps).
    for prep, rtol in (
        (law.prepare(frame, for_fit=False, max_eval=100), 2e-3),
        (law.prepare(frame), 1e-2),
    ):
        coarse = law.predict(theta, prep)[0]
        fit = prep.fit_mask
        np.testing.assert_allclose(coarse[fit], full[fit], rtol=1e-12)  # fit points exact
        after = frame["step"].to_numpy() >= 100  # from the first fit point on
        np.testing.assert_allclose(coarse[after], full[after], rtol=rtol)
    notes = law.prepare(frame, for_fit=False, max_eval=100).extra["notes"]
    assert any("interpolated" in n for n in notes)


@pytest.mark.parametrize("law", [LrAnnealing(), MultiPower()], ids=lambda law: law.name)
def test_options_are_checked_and_schedules_stored_as_text(law) -> None:
    opts = law.resolve(pd.DataFrame(), schedules={"a": ScheduleSpec.parse(COSINE)})
    assert opts["schedules"] == {"a": str(ScheduleSpec.parse(COSINE))}
    json.dumps(opts)  # stored with the fit
    with pytest.raises(FitError, match="unknown option"):
        law.resolve(pd.DataFrame(), colour="red")
    with pytest.raises(FitError, match="no row has a loss"):
        law.prepare(_frame(COSINE, 100).assign(loss=np.nan))


@pytest.mark.parametrize("law", [LrAnnealing(), MultiPower()], ids=lambda law: law.name)
def test_start_grid_contains_a_close_start(law) -> None:
    truth, frame = law.example(np.random.default_rng(2))
    prep = law.prepare(frame)
    starts = np.vstack([law.guess(prep)[None, :], law.starts(prep)])
    assert np.isfinite(starts).all() and starts.shape[1] == len(truth)
    y = prep.y[prep.fit_mask]
    best = min(
        np.sqrt(np.mean((law.predict(s[None, :], prep)[0][prep.fit_mask] - y) ** 2)) for s in starts
    )
    assert best < 0.02  # the linear solve puts some start within 0.02 nats of the data


# -- the derived analysis: the loss curve of a new schedule ------------------------------


def test_schedule_curve_predicts_an_unseen_schedule() -> None:
    """lr_annealing fitted on constant + cosine predicts the WSD curve it never saw."""
    from fitting import fit
    from fitting.analyses.schedule_curve import schedule_curve

    law = LrAnnealing()
    truth, frame = law.example(np.random.default_rng(3))
    result = fit("lr_annealing", frame[frame["run"] != "wsd"])
    wsd = frame.loc[frame["run"] == "wsd", "schedule"].iloc[0]
    curve = schedule_curve(result, wsd)
    assert list(curve.columns) == ["step", "lr", "loss", "lo", "hi", "pred_lo", "pred_hi"]
    assert (curve["pred_lo"] <= curve["lo"]).all() and (curve["hi"] <= curve["pred_hi"]).all()
    assert {5999, 6000, 6001} <= set(curve["step"])  # the decay start is drawn sharply
    exact = law.predict(
        np.array([list(truth.values())]),
        law.prepare(curve.assign(run="x", schedule=wsd), for_fit=False),
    )[0]
    late = curve["step"].to_numpy() > 1000
    assert np.abs(curve["loss"].to_numpy()[late] / exact[late] - 1).max() < 0.003
    assert (curve["lo"] <= curve["loss"]).all() and (curve["loss"] <= curve["hi"]).all()
    np.testing.assert_allclose(curve["lr"], ScheduleSpec.coerce(wsd).lr(curve["step"]))


def test_schedule_curve_rejects_bad_input() -> None:
    from fitting import fit
    from fitting.analyses.schedule_curve import schedule_curve

    _, frame = LrAnnealing().example(np.random.default_rng(4))
    result = fit("lr_annealing", frame)
    with pytest.raises(FitError, match="kind 'cosinus'"):
        schedule_curve(result, "cosinus:peak=1e-3,total=100")
    with pytest.raises(FitError, match="whole numbers"):
        schedule_curve(result, COSINE, steps=[10, 20.5])
    result.law = "power_law"
    with pytest.raises(FitError, match="needs a fit of lr_annealing or multi_power"):
        schedule_curve(result, COSINE)


def test_mixed_splits_fit_the_train_split_only() -> None:
    law = LrAnnealing()
    train = _frame(COSINE, 100).assign(split="train")
    evals = train.assign(split="eval", loss=train["loss"] + 0.1)
    frame = pd.concat([train, evals], ignore_index=True)
    opts = law.resolve(frame)
    assert opts["split"] == "train"
    prep = law.prepare(frame, **opts)
    assert prep.fit_mask[len(train) :].sum() == 0 and prep.fit_mask[: len(train)].all()
    assert any("split 'train'" in note for note in prep.extra["notes"])
    with pytest.raises(FitError, match="no row of split 'test' has a loss"):
        law.prepare(frame, split="test")


def test_schedule_cells_may_hold_dicts_as_the_trainer_records_them() -> None:
    frame = _frame(COSINE, 50).assign(schedule=[ScheduleSpec.parse(WSD).to_dict()] * 40)
    runs, _ = run_lrs(frame)
    np.testing.assert_array_equal(runs["r"].lr, ScheduleSpec.parse(WSD).dense())


@pytest.mark.parametrize("law", [LrAnnealing(), MultiPower()], ids=lambda law: law.name)
def test_bad_frames_name_what_is_wrong(law) -> None:
    good = _frame(COSINE, 100)
    with pytest.raises(FitError, match="'step' column"):
        law.prepare(good.drop(columns="step"))
    with pytest.raises(FitError, match="loss must be > 0"):
        law.prepare(good.assign(loss=-1.0))
    with pytest.raises(FitError, match="needs a 'loss' column"):
        law.prepare(good.drop(columns="loss"))
    with pytest.raises(FitError, match="lr must be >= 0"):
        law.prepare(good.assign(lr=-1e-3))
    with pytest.raises(FitError, match="no rows"):
        law.prepare(good.iloc[:0])
    assert law.prepare(good.drop(columns="loss"), for_fit=False).n_points == 0


def test_include_warmup_false_drops_the_warmup_area() -> None:
    law = LrAnnealing()
    frame = _frame(COSINE, 100)
    with_w = law.prepare(frame, schedules={"r": COSINE})
    without = law.prepare(frame, schedules={"r": COSINE}, include_warmup=False)
    warm_area = ScheduleSpec.parse(COSINE).dense()[:100].sum()
    np.testing.assert_allclose(
        np.exp(with_w.extra["log_s1"]) - np.exp(without.extra["log_s1"]), warm_area
    )


def test_loss_drop_terms_for_many_points_are_built_in_chunks() -> None:
    """20,000 points (a loss at every step) build in bounded chunks; spot-check them."""
    spec = ScheduleSpec.luo2025("cosine_24000")
    run = RunLR("r", 0, spec.dense(), spec.warmup_steps, "schedule")
    steps = np.arange(4000, 24000)
    params = {"b": 400.0, "c": 2.0, "beta": 0.6, "gamma": 0.6}
    terms = loss_drop_terms(run, steps)
    assert terms.offsets.size == steps.size
    ld, _ = terms.drop(*(np.array([v]) for v in params.values()))
    spot = np.arange(0, steps.size, 997)
    exact = exact_loss_drop(run, steps[spot], **params)
    np.testing.assert_allclose(ld[0, spot], exact, atol=1e-4 * np.abs(exact).max())


def test_lambda_is_accepted_as_the_papers_name_for_lam() -> None:
    law = LrAnnealing()
    assert law.resolve(pd.DataFrame(), **{"lambda": 0.99})["lam"] == 0.99
    frame = _frame(WSD, 100)
    a = law.prepare(frame, schedules={"r": WSD}, lam=0.99).extra["s2"]
    b = law.prepare(frame, schedules={"r": WSD}, **{"lambda": 0.99}).extra["s2"]
    np.testing.assert_array_equal(a, b)


def test_options_are_typed_like_their_defaults() -> None:
    opts = MultiPower().resolve(pd.DataFrame(), ld_warmup="false", max_eval="500")
    assert opts["ld_warmup"] is False and opts["max_eval"] == 500
    assert LrAnnealing().resolve(pd.DataFrame(), lam="0.99")["lam"] == 0.99
    with pytest.raises(FitError, match="option include_warmup must be a bool"):
        LrAnnealing().resolve(pd.DataFrame(), include_warmup="maybe")
    with pytest.raises(FitError, match="option max_eval must be a int"):
        MultiPower().resolve(pd.DataFrame(), max_eval=2.5)


def test_default_steps_start_after_the_warmup_and_mark_regime_changes() -> None:
    from fitting.analyses.schedule_curve import default_steps

    spec = ScheduleSpec.parse("multistep:peak=1e-3,warmup=200,total=5000,milestones=3001,gamma=0.1")
    steps = default_steps(spec)
    assert steps[0] == 200 and steps[-1] == 5000
    assert {3000, 3001, 3002} <= set(steps) and np.all(np.diff(steps) > 0)


@pytest.mark.parametrize("law", [LrAnnealing(), MultiPower()], ids=lambda law: law.name)
def test_constant_lr_only_is_noted(law) -> None:
    prep = law.prepare(_frame("constant:peak=1e-3,warmup=100,total=2000", 100))
    assert any("determined" in note for note in prep.extra["notes"])
    assert not any("determined" in n for n in law.prepare(_frame(COSINE, 100)).extra["notes"])


def test_fit_reports_what_the_law_assumed() -> None:
    """A fit on a sparse LR column says in its checks that the LR was interpolated."""
    import fitting

    _, frame = LrAnnealing().example(np.random.default_rng(0))
    sparse = frame[frame["loss"].notna() & (frame["step"] % 50 == 0)]
    sparse = sparse.drop(columns=[c for c in ("schedule",) if c in sparse])
    result = fitting.fit("lr_annealing", sparse)
    assert any("interpolated" in note for note in result.checks.get("notes", []))
    assert "interpolated" in json.dumps(result.checks)
