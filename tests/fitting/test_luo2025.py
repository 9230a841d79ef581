"""The multi-power law against Luo et al. 2025's published 25M results.

Data: ``examples/luo2025_25m`` (thu-yao-01-luo/MultiPowerLaw, ``loss_curve_repo/csv_25``,
MIT), shipped with the repository.

Conventions that reproduce the published metrics (R² 0.9988, MAE 0.00376, RMSE 0.00465,
PredE 0.00110, WorstE 0.00409, averaged over the six test curves):

- the per-step LR is rebuilt from each file's schedule name (``ScheduleSpec.luo2025``);
  warmup linear from 0 at step 0 to 3e-4 at step 2160 (the authors' arrays use
  ``linspace(0, 3e-4, 2160)``, which moves WorstE by 1e-5 only);
- S1(t) + S_W is the LR summed over every step 0..t, the warmup included and step t too;
- the loss-drop sum starts at k = 1, so the LR's rise during the warmup enters LD as
  negative drops (``ld_warmup=True``, the default); starting it after the warmup instead
  gives R² 0.42: the published L0 and B absorb the warmup's term;
- every logged point is predicted; points at step 24000 (the end of the schedule) would
  be dropped as the authors do, but the 25M files have none;
- metrics per curve on raw loss (PredE and WorstE relative), then averaged over the
  curves other than the three the authors fit on (cosine_24000, constant_24000, wsdcon_9).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fitting import FitResult, fit
from fitting.analyses.schedule_curve import schedule_curve
from fitting.laws.multi_power import MultiPower
from fitting.schedules import ScheduleSpec
from tests.published import LUO_25M, luo_metrics
from tests.published import LUO_PUBLISHED_25M as PUBLISHED_25M
from tests.published import LUO_TEST as TEST
from tests.published import LUO_TRAIN as TRAIN

PUBLISHED_METRICS = {
    "R2": 0.9988,
    "MAE": 0.00376,
    "RMSE": 0.00465,
    "PredE": 0.00110,
    "WorstE": 0.00409,
}


def luo_frame(names: tuple[str, ...]) -> pd.DataFrame:
    """The curves as one canonical frame (run, step, lr, loss), end-of-schedule point dropped."""
    parts = []
    for name in names:
        part = pd.read_csv(LUO_25M / f"{name}.csv").assign(run=name)
        parts.append(part[part["step"] < 24000] if name.endswith("24000") else part)
    return pd.concat(parts, ignore_index=True)


def luo_schedules(names: tuple[str, ...]) -> dict[str, str]:
    return {name: str(ScheduleSpec.luo2025(name)) for name in names}


def test_published_parameters_reproduce_the_published_test_metrics() -> None:
    frame = luo_frame(TEST)
    law = MultiPower()
    prep = law.prepare(frame, schedules=luo_schedules(TEST))
    assert prep.extra["notes"] == []  # the LR is exact, not interpolated
    pred = law.predict(np.array([list(PUBLISHED_25M.values())]), prep)[0]
    got = luo_metrics(frame, pred)
    assert got["R2"] == pytest.approx(PUBLISHED_METRICS["R2"], abs=1e-4)
    for key in ("MAE", "RMSE", "PredE", "WorstE"):
        assert got[key] == pytest.approx(PUBLISHED_METRICS[key], rel=0.02), key


def test_sparse_lr_alone_is_interpolated_and_still_close() -> None:
    """Without the schedules the logged LR (every ~128 steps) is interpolated: sudden drops
    (wsdcon) become 64-step ramps, so WorstE grows, but the averages barely move."""
    frame = luo_frame(TEST)
    law, theta = MultiPower(), np.array([list(PUBLISHED_25M.values())])
    prep = law.prepare(frame)
    assert any("interpolated" in note for note in prep.extra["notes"])
    got = luo_metrics(frame, law.predict(theta, prep)[0])
    assert got["R2"] > 0.998
    assert got["PredE"] == pytest.approx(PUBLISHED_METRICS["PredE"], rel=0.1)


def published_result() -> FitResult:
    """The authors' 25M parameters as a FitResult (no uncertainty: the band is the line)."""
    names = list(PUBLISHED_25M)
    return FitResult(
        law="multi_power",
        params=dict(PUBLISHED_25M),
        stderr=dict.fromkeys(names, 0.0),
        intervals={k: [v, v] for k, v in PUBLISHED_25M.items()},
        objective=0.0,
        n_points=0,
        residuals=[],
        aic=0.0,
        bic=0.0,
        options=MultiPower().resolve(pd.DataFrame()),
    )


def predict_with_schedule_curve(result: FitResult, frame: pd.DataFrame) -> np.ndarray:
    """Each test curve predicted from its schedule alone, at the logged steps."""
    out = np.empty(len(frame))
    for name, part in frame.groupby("run", sort=False):
        curve = schedule_curve(result, ScheduleSpec.luo2025(str(name)), steps=part["step"])
        out[part.index] = curve.set_index("step").loc[part["step"], "loss"].to_numpy()
    return out


def test_schedule_curve_of_the_published_fit_matches_the_test_curves() -> None:
    frame = luo_frame(TEST)
    got = luo_metrics(frame, predict_with_schedule_curve(published_result(), frame))
    assert got["R2"] == pytest.approx(PUBLISHED_METRICS["R2"], abs=1e-4)
    assert got["PredE"] == pytest.approx(PUBLISHED_METRICS["PredE"], rel=0.02)


@pytest.mark.slow
def test_fit_on_three_curves_predicts_the_other_six() -> None:
    """Our own fit on the authors' three training curves predicts the six test curves
    about as well as the published parameters do. It reaches a lower training objective
    than the published parameters (1.4e-4 against 2.9e-4, at other C, beta, gamma): the
    authors' code stops AdamW after at most 200 steps, so theirs is not the Huber optimum;
    measured test R² 0.9976, PredE 0.00137 (published: 0.9988, 0.00110)."""
    frame = luo_frame(TRAIN)
    result = fit("multi_power", frame, schedules=luo_schedules(TRAIN))
    test = luo_frame(TEST)
    got = luo_metrics(test, predict_with_schedule_curve(result, test))
    assert got["R2"] > 0.995
    assert got["PredE"] < 0.002


def test_lr_annealing_on_the_same_curves_predicts_the_test_curves() -> None:
    """Tissue et al.'s law fitted on the same three curves also predicts the six others
    (measured: R² 0.9979, PredE 0.0014; the multi-power law does better, as Luo et al.
    report)."""
    frame = luo_frame(TRAIN)
    result = fit("lr_annealing", frame, schedules=luo_schedules(TRAIN))
    test = luo_frame(TEST)
    got = luo_metrics(
        test, result.predict(test.assign(schedule=test["run"].map(luo_schedules(TEST))))
    )
    assert got["R2"] > 0.995
    assert got["PredE"] < 0.002
