"""The engine's options, determinism, uncertainty and its errors on bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fitting
from fitting.errors import FitError
from store.errors import BadInputError


@pytest.fixture(scope="module")
def power_frame() -> pd.DataFrame:
    return fitting.LAWS["power_law"].example(np.random.default_rng(0))[1]


def _clean_power(l_inf: float = 1.7, x0: float = 3e4, alpha: float = 0.3) -> pd.DataFrame:
    x = np.geomspace(1e6, 1e10, 12)
    return pd.DataFrame({"params": x, "loss": l_inf + (x0 / x) ** alpha})


def test_exact_data_is_recovered_exactly() -> None:
    result = fitting.fit("power_law", _clean_power())
    assert result.params["L_inf"] == pytest.approx(1.7, rel=1e-6)
    assert result.params["x0"] == pytest.approx(3e4, rel=1e-4)
    assert result.params["alpha"] == pytest.approx(0.3, rel=1e-5)
    assert result.objective < 1e-12


def test_least_squares_option_and_linear_residuals() -> None:
    frame = _clean_power()
    for options in ({"loss": "ls"}, {"residuals": "linear"}):
        result = fitting.fit("power_law", frame, **options)
        assert result.params["alpha"] == pytest.approx(0.3, rel=1e-4)
        assert result.options["loss"] == options.get("loss", "huber")


def test_fixed_parameter_is_held_and_removed_from_the_optimisation() -> None:
    x = np.geomspace(1e6, 1e10, 12)
    frame = pd.DataFrame({"params": x, "loss": (1.4e14 / x) ** 0.07})
    result = fitting.fit("power_law", frame, fix={"L_inf": 0})
    assert result.params["L_inf"] == 0.0 and result.stderr["L_inf"] == 0.0
    assert result.free == ["x0", "alpha"]
    assert result.params["alpha"] == pytest.approx(0.07, rel=1e-5)
    assert result.params["x0"] == pytest.approx(1.4e14, rel=1e-3)


def test_power_law_x_option(power_frame: pd.DataFrame) -> None:
    frame = power_frame.rename(columns={"params": "tokens"})
    result = fitting.fit("power_law", frame)
    assert result.options["x"] == "tokens"
    with pytest.raises(FitError, match="x must be one of"):
        fitting.fit("power_law", frame, x="bogus")


def test_bootstrap_is_seeded_and_brackets_the_estimate(power_frame: pd.DataFrame) -> None:
    a = fitting.fit("power_law", power_frame, bootstrap=60, seed=7)
    b = fitting.fit("power_law", power_frame, bootstrap=60, seed=7, n_jobs=1)
    c = fitting.fit("power_law", power_frame, bootstrap=60, seed=8)
    assert a.bootstrap_samples == b.bootstrap_samples
    assert a.bootstrap_samples != c.bootstrap_samples
    assert len(a.bootstrap_samples) == 60
    for name, (lo, hi) in a.intervals.items():
        assert lo <= a.params[name] <= hi, name
    # The bootstrap spread agrees with the curvature standard error (same order).
    spread = np.std(np.asarray(a.bootstrap_samples)[:, 2])
    assert 0.3 < spread / a.stderr["alpha"] < 3
    lo, hi = a.predict_band(power_frame, level=0.9)
    pred = a.predict(power_frame)
    assert np.all(lo <= pred) and np.all(pred <= hi)


@pytest.mark.slow
def test_bootstrap_in_a_process_pool_matches_serial(power_frame: pd.DataFrame) -> None:
    serial = fitting.fit("power_law", power_frame, bootstrap=40, seed=3, n_jobs=1)
    pooled = fitting.fit("power_law", power_frame, bootstrap=40, seed=3, n_jobs=2)
    np.testing.assert_allclose(pooled.bootstrap_samples, serial.bootstrap_samples, rtol=1e-12)


def test_resampling_runs_keeps_runs_whole() -> None:
    from fitting.engine import get_law, make_problem
    from fitting.uncertainty import resample_weights

    frame = _clean_power()
    frame["run"] = np.repeat(["a", "b", "c", "d"], 3)
    problem, _, _ = make_problem(get_law("power_law"), frame, {})
    w = resample_weights(problem, 50, np.random.default_rng(0), "runs")
    assert w.shape == (50, 12)
    blocks = w.reshape(50, 4, 3)
    assert np.all(blocks == blocks[:, :, :1])  # all rows of a run share a multiplicity
    assert np.all(w.reshape(50, 4, 3)[:, :, 0].sum(axis=1) == 4)
    auto = resample_weights(problem, 50, np.random.default_rng(0), "auto")  # < 5 runs
    assert not np.all(auto.reshape(50, 4, 3) == auto.reshape(50, 4, 3)[:, :, :1])
    assert np.all(auto.sum(axis=1) == 12)


def test_information_criteria_prefer_the_true_law() -> None:
    _, frame = fitting.LAWS["chinchilla"].example(np.random.default_rng(0))
    full = fitting.fit("chinchilla", frame)
    no_data_term = fitting.fit("power_law", frame, x="params")
    assert full.aic < no_data_term.aic and full.bic < no_data_term.bic


def test_extrapolation_check_in_the_result(power_frame: pd.DataFrame) -> None:
    result = fitting.fit("power_law", power_frame, extrapolation=True)
    ext = result.checks["extrapolation"]
    assert ext["n_heldout"] == 1 and ext["mean_rel_error"] < 0.01
    assert "extrapolation" in result.report()


def test_json_round_trip_is_exact_with_infinities(power_frame: pd.DataFrame) -> None:
    result = fitting.fit("power_law", power_frame)
    result.stderr["x0"] = float("inf")
    text = result.to_json()
    assert "Infinity" not in text
    assert fitting.FitResult.from_json(text) == result


@pytest.mark.parametrize(
    ("frame", "options", "message"),
    [
        (pd.DataFrame({"params": [1e6, 1e7], "loss": [3.0, 2.5]}), {}, "too few points"),
        (pd.DataFrame({"params": np.geomspace(1e6, 1e9, 6), "loss": 2.0}), {}, "constant"),
        (
            pd.DataFrame(
                {"params": np.geomspace(1e6, 1e9, 6), "loss": [3, 2.9, np.nan, 2.7, 2.6, 2.5]}
            ),
            {},
            "missing",
        ),
        (
            pd.DataFrame({"params": [1e6, -1, 1e8, 1e9, 1e10], "loss": [3, 2.9, 2.8, 2.7, 2.6]}),
            {},
            "positive",
        ),
        (
            pd.DataFrame(
                {"params": np.geomspace(1e6, 1e9, 6), "loss": [3, 2.9, 0.0, 2.7, 2.6, 2.5]}
            ),
            {},
            "positive",
        ),
        (
            pd.DataFrame({"tokens": np.geomspace(1e6, 1e9, 6), "loss": np.linspace(3, 2, 6)}),
            {"law": "chinchilla"},
            "params",
        ),
        (
            pd.DataFrame({"params": np.geomspace(1e6, 1e9, 6), "loss": np.linspace(3, 2, 6)}),
            {"fix": {"nope": 1}},
            "cannot fix",
        ),
        (
            pd.DataFrame({"params": np.geomspace(1e6, 1e9, 6), "loss": np.linspace(3, 2, 6)}),
            {"loss": "l1"},
            "loss must be",
        ),
        (
            pd.DataFrame({"params": np.geomspace(1e6, 1e9, 6), "loss": np.linspace(3, 2, 6)}),
            {"law": "no_such_law"},
            "unknown law",
        ),
        (pd.DataFrame(), {}, "no data"),
    ],
)
def test_bad_input_fails_clearly(frame: pd.DataFrame, options: dict, message: str) -> None:
    options = dict(options)
    law = options.pop("law", "power_law")
    with pytest.raises(FitError, match=message) as info:
        fitting.fit(law, frame, **options)
    assert isinstance(info.value, BadInputError)


def test_fit_never_returns_nan() -> None:
    rng = np.random.default_rng(5)
    x = np.geomspace(1e6, 1e9, 8)
    frame = pd.DataFrame({"params": x, "loss": 2.0 + rng.normal(0, 0.05, 8)})  # pure noise
    result = fitting.fit("power_law", frame)
    assert all(np.isfinite(v) for v in result.params.values())
    assert not any(np.isnan(v) for v in result.stderr.values())
    assert np.isfinite(result.objective)


def test_polars_frames_are_accepted(power_frame: pd.DataFrame) -> None:
    import polars as pl

    result = fitting.fit("power_law", pl.from_pandas(power_frame))
    expected = fitting.fit("power_law", power_frame)
    assert result.params == expected.params
    np.testing.assert_array_equal(
        result.predict(pl.from_pandas(power_frame)), expected.predict(power_frame)
    )
    with pytest.raises(FitError, match="data frame"):
        fitting.fit("power_law", [1, 2, 3])


def test_predict_needs_the_laws_inputs(power_frame: pd.DataFrame) -> None:
    result = fitting.fit(
        "chinchilla", fitting.LAWS["chinchilla"].example(np.random.default_rng(0))[1]
    )
    with pytest.raises(FitError, match="tokens"):
        result.predict(pd.DataFrame({"params": [1e9]}))
    with pytest.raises(FitError, match="positive"):
        result.predict({"params": [1e9], "tokens": [-1.0]})
    with pytest.raises(FitError, match="level"):
        result.predict_band({"params": [1e9], "tokens": [1e10]}, level=1.5)
