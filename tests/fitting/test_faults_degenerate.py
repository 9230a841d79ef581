"""Degenerate data: what cannot be fitted is refused, what can is fitted with its doubts
flagged (and `converged` honest), and a diverged run never lends an earlier loss."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import fitting
from fitting.data import select_for_law
from fitting.errors import DataWarning, FitError

SIZES = np.geomspace(1e6, 1e9, 8)


def strict_loads(text: str) -> object:
    """json.loads that refuses the non-standard Infinity / NaN constants."""

    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def rising_frame() -> pd.DataFrame:
    """Loss that rises with N: L = 1.5 + (N / 1e6)^0.1."""
    return pd.DataFrame({"params": SIZES, "loss": 1.5 + (SIZES / 1e6) ** 0.1})


def one_size_frame(tokens: np.ndarray | float) -> pd.DataFrame:
    """Every point at N = 1e8; chinchilla's truth in D (tokens) where tokens vary."""
    d = np.broadcast_to(np.asarray(tokens, dtype=float), (8,))
    loss = 1.69 + 406.4 / 1e8**0.34 + 410.7 / d**0.28 + np.linspace(0, 1e-3, 8)
    return pd.DataFrame({"params": 1e8, "tokens": d, "loss": loss})


def test_every_point_at_one_n_is_refused_for_a_law_of_n() -> None:
    frame = one_size_frame(np.geomspace(1e9, 1e11, 8))
    with pytest.raises(FitError) as err:
        fitting.fit("power_law", frame, x="params")
    assert str(err.value) == (
        "law 'power_law': every point has params=1e+08, so the law predicts the same loss "
        "for all 8 of them and cannot be fitted; the data need points at two or more "
        "values of params"
    )


def test_every_point_at_one_n_and_d_is_refused() -> None:
    with pytest.raises(FitError, match=r"every point has params=1e\+08 and tokens=2e\+09"):
        fitting.fit("chinchilla", one_size_frame(2e9))


def test_one_n_with_varied_d_is_fitted_with_its_undetermined_terms_flagged() -> None:
    result = fitting.fit("chinchilla", one_size_frame(np.geomspace(1e9, 1e11, 8)))
    assert result.converged is False
    assert {"E", "A", "alpha"} <= set(result.checks["undetermined"])
    assert result.checks["constant_inputs"] == {"params": 1e8}
    for name in result.checks["undetermined"]:
        assert result.stderr[name] == np.inf
    assert "every point has params=1e+08" in result.report()


@pytest.mark.parametrize("huge", [1e300, 1e7])
def test_absurd_losses_are_refused(huge: float) -> None:
    frame = rising_frame().assign(loss=huge * (1 + 0.1 * np.arange(8)))
    with pytest.raises(FitError, match=r"8 loss value\(s\) are beyond 1e\+06") as err:
        fitting.fit("chinchilla", frame.assign(tokens=20 * SIZES))
    assert err.value.column == "loss"


def test_loss_rising_with_n_is_flagged_not_converged() -> None:
    result = fitting.fit("power_law", rising_frame())
    assert result.converged is False
    assert result.checks["at_bound"] == {"x0": "lower", "alpha": "upper"}
    assert result.checks["undetermined"] == ["x0", "alpha"]
    lines = {line.split()[0]: line for line in result.report().splitlines()}
    assert lines["x0"].endswith("(at its lower bound, undetermined)")
    assert lines["alpha"].endswith("(at its upper bound, undetermined)")
    assert not lines["L_inf"].endswith(")")
    text = result.report()
    assert "warning: parameter(s) at a bound of the law: x0 (lower), alpha (upper)" in text
    assert "warning: the data do not determine x0, alpha (infinite standard error)" in text


def test_a_fitted_law_whose_loss_rises_with_size_is_flagged() -> None:
    # A negative exponent held fixed: the law then fits the rising data exactly.
    result = fitting.fit("power_law", rising_frame(), fix={"alpha": -0.1})
    assert result.params["L_inf"] == pytest.approx(1.5, rel=1e-6)
    assert result.checks["rises_with"] == ["params"]
    assert "warning: the fitted loss rises with params" in result.report()


def test_strict_json_with_infinite_standard_errors() -> None:
    result = fitting.fit("power_law", rising_frame())
    raw = strict_loads(result.to_json())
    assert raw["stderr"]["x0"] == "inf" and raw["intervals"]["alpha"] == ["-inf", "inf"]
    assert raw["converged"] is False
    back = fitting.FitResult.from_json(result.to_json())
    assert back.stderr["x0"] == np.inf and back.checks == result.checks


@pytest.mark.parametrize("name", sorted(fitting.LAWS))
def test_clean_example_fits_have_no_doubts(name: str) -> None:
    """The flags must not cry wolf: every law's known-truth example fits cleanly."""
    _, frame = fitting.LAWS[name].example(np.random.default_rng(0))
    result = fitting.fit(name, frame)
    assert result.converged is True
    doubts = set(fitting.result.DOUBT_KEYS)
    assert not doubts & set(result.checks), result.checks
    assert result.flag_names() == []
    assert not [line for line in result.report().splitlines() if line.startswith("warning")]


def test_one_tokens_per_parameter_ratio_is_flagged_as_confounded() -> None:
    """Every run at D = 20 N: alpha and beta trade off; E ends on its bound. The answer is
    still given, with its flags."""
    n = np.geomspace(1e7, 1e10, 10)
    loss = (1.8 + 482 / n**0.35 + 2085 / (20 * n) ** 0.37) * np.random.default_rng(0).lognormal(
        0, 0.005, 10
    )
    result = fitting.fit("chinchilla", pd.DataFrame({"params": n, "tokens": 20 * n, "loss": loss}))
    pair = result.checks["confounded_inputs"][0]
    assert pair["columns"] == ["params", "tokens"] and pair["ratio"] == pytest.approx(20.0)
    assert result.checks["at_bound"]["E"] == "lower" and result.converged is False
    assert "tokens and params are always scaled together (tokens/params = 20" in result.report()
    assert {"confounded_inputs", "at_bound"} <= set(result.flag_names())


def test_encoder_and_decoder_grown_in_step_are_confounded() -> None:
    n = np.geomspace(1e7, 1e9, 8)
    loss = 2.0 + 0.5 * (1e8 / n) ** 0.3 * (1e8 / (2 * n)) ** 0.2
    frame = pd.DataFrame({"encoder_params": n, "decoder_params": 2 * n, "loss": loss})
    result = fitting.fit("nmt", frame)
    pair = result.checks["confounded_inputs"][0]
    assert pair["columns"] == ["encoder_params", "decoder_params"]
    assert pair["ratio"] == pytest.approx(2.0)


def test_within_one_percent_of_a_log_bound_is_at_the_bound() -> None:
    from fitting.checks import at_bounds
    from fitting.engine import get_law, make_problem

    _, frame = fitting.LAWS["chinchilla"].example(np.random.default_rng(0))
    problem, _, _ = make_problem(get_law("chinchilla"), frame, {})
    theta = np.array([[1.1e-4, 480.0, 2000.0, 0.35, 0.37]])  # E 10% above its 1e-4 bound
    assert at_bounds(problem, problem.to_z(theta)[0]) == {"E": "lower"}
    theta[0, 0] = 2e-4  # a factor 2 away: 5% of the log span, not at the bound
    assert at_bounds(problem, problem.to_z(theta)[0]) == {}


def test_an_undetermined_parameter_prints_undetermined_not_an_infinite_interval() -> None:
    result = fitting.fit("power_law", rising_frame())
    for name in ("x0", "alpha"):
        line = next(s for s in result.report().splitlines() if s.startswith(name))
        assert "undetermined" in line and "inf" not in line.split()[3:]
        assert result.interval_text(name) == "undetermined"


# --- diverged runs -------------------------------------------------------------------------


def curves(diverged: dict[str, float]) -> pd.DataFrame:
    """Runs logging loss 10 at step 0, then the law at steps 500 and 1000; the runs in
    ``diverged`` log that value (NaN or inf) at step 1000 instead."""
    rows = []
    for i, n in enumerate(SIZES):
        run, final = f"r{i}", 1.7 + (3e4 / n) ** 0.3
        for step, loss in ((0, 10.0), (500, final + 0.1), (1000, diverged.get(run, final))):
            rows.append({"run": run, "split": "train", "step": step, "params": n, "loss": loss})
    return pd.DataFrame(rows)


def test_a_run_whose_last_loss_is_nan_or_inf_is_left_out_with_a_warning() -> None:
    frame = curves({"r3": np.nan, "r5": np.inf})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        picked = select_for_law(fitting.LAWS["power_law"], frame)
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    why = "its last logged loss (step 1000) is NaN or infinite: a diverged run, with no final loss"
    assert messages == [f"run 'r3' left out: {why}", f"run 'r5' left out: {why}"]
    assert sorted(picked["run"]) == ["r0", "r1", "r2", "r4", "r6", "r7"]
    assert (picked["step"] == 1000).all()  # no earlier loss stands in for a final one
    result = fitting.fit("power_law", picked)
    assert result.n_points == 6
    assert result.checks["excluded_runs"] == {"r3": why, "r5": why}
    assert f"warning: run 'r3' left out: {why}" in result.report()
    assert result.params["alpha"] == pytest.approx(0.3, rel=1e-6)


def test_nothing_left_after_the_diverged_runs_is_refused() -> None:
    frame = curves({f"r{i}": np.nan for i in range(8)})
    with pytest.warns(DataWarning), pytest.raises(FitError) as err:
        select_for_law(fitting.LAWS["power_law"], frame)
    assert str(err.value) == (
        "law 'power_law': no run has a loss value to fit (left out: r0, r1, r2, r3, r4, r5, r6, r7)"
    )


def test_lr_logged_between_losses_is_not_divergence() -> None:
    """A run whose LR is logged more often than its loss ends on a loss-less row."""
    steps = np.arange(0, 1001, 10)
    loss = np.where((steps % 100 == 0) & (steps < 1000), 3.0 - steps / 1000, np.nan)
    frame = pd.DataFrame(
        {"run": "a", "split": "train", "step": steps, "params": 1e6, "lr": 1e-3, "loss": loss}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        picked = select_for_law(fitting.LAWS["power_law"], frame)
    assert picked["step"].tolist() == [900] and picked["loss"].tolist() == [pytest.approx(2.1)]
