"""One generic test of the Law contract over every registered law (scikit-learn style)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import fitting
from fitting import analyses
from fitting.errors import FitError
from fitting.laws.base import Law, Parameter

LAW_NAMES = sorted(fitting.LAWS)
ROOT = Path(__file__).resolve().parents[2]


def test_registry_has_the_public_laws() -> None:
    public = ("power_law", "chinchilla", "kaplan", "nmt", "multilingual", "data_constrained")
    public += ("overtrained", "downstream", "downstream_score", "broken_power_law")
    public += ("downstream_error",)
    for name in public:
        assert name in fitting.LAWS
    for name, law in fitting.LAWS.items():
        assert law.name == name and isinstance(law, Law)
        assert law.formula and law.description and law.kind in ("points", "curves")


def test_public_parameter_names() -> None:
    laws = ("power_law", "chinchilla", "kaplan", "nmt", "data_constrained", "overtrained")
    laws += ("downstream", "downstream_score", "broken_power_law", "downstream_error")
    names = {n: [p.name for p in fitting.LAWS[n].parameters(None)] for n in laws}
    assert names == {
        "power_law": ["L_inf", "x0", "alpha"],
        "chinchilla": ["E", "A", "B", "alpha", "beta"],
        "kaplan": ["N_c", "D_c", "alpha_N", "alpha_D"],
        "nmt": ["alpha", "p_e", "p_d", "L_inf"],
        "data_constrained": ["E", "A", "B", "alpha", "beta", "R_D", "R_N"],
        "overtrained": ["E", "a", "b", "eta"],
        "downstream": ["E", "A", "alpha"],
        "downstream_score": ["A", "alpha", "beta"],
        "broken_power_law": ["a", "b", "c0", "c1", "d1", "f1"],
        "downstream_error": ["eps", "k", "gamma"],
    }
    multi = fitting.LAWS["multilingual"].parameters(None, families=["de", "fr"])
    assert [p.name for p in multi][:6] == [
        "de.E",
        "de.A",
        "de.B",
        "de.alpha",
        "de.beta",
        "de.gamma",
    ]


@pytest.mark.parametrize("name", LAW_NAMES)
def test_gradient_matches_finite_differences(name: str) -> None:
    law = fitting.LAWS[name]
    truth, frame = law.example(np.random.default_rng(1))
    opts = law.resolve(frame)
    prep = law.prepare(frame, **opts)
    params = law.parameters(None, **opts)
    theta = np.array([[truth.get(p.name, 0.0) for p in params]])
    analytic = law.gradient(theta, prep)
    numeric = Law.gradient(law, theta, prep)
    assert analytic.shape == (1, prep.n_rows, len(params))
    scale = np.abs(numeric).max(axis=1, keepdims=True) + 1e-12
    assert np.max(np.abs(analytic - numeric) / scale) < 1e-5


@pytest.mark.parametrize("name", LAW_NAMES)
def test_law_recovers_known_parameters(name: str) -> None:
    """Synthetic data with known parameters: every parameter within 3 standard errors."""
    law = fitting.LAWS[name]
    truth, frame = law.example(np.random.default_rng(0))
    result = fitting.fit(name, frame)
    params = law.parameters(None, **result.law_options)
    assert list(result.params) == [p.name for p in params]
    for key, true in truth.items():
        se = result.stderr[key]
        assert np.isfinite(se) and se > 0, (key, se)
        assert abs(result.params[key] - true) <= 3 * se, (key, result.params[key], true, se)
    # One prediction per row, close to the data; the band brackets the prediction.
    pred = result.predict(frame)
    assert pred.shape == (len(frame),)
    rows = np.isfinite(frame["loss"].to_numpy(float))
    assert np.median(np.abs(pred[rows] / frame["loss"].to_numpy(float)[rows] - 1)) < 0.02
    lo, hi = result.predict_band(frame)
    assert np.all(lo <= pred + 1e-12) and np.all(pred <= hi + 1e-12)
    assert fitting.FitResult.from_json(result.to_json()) == result


@pytest.mark.parametrize("name", LAW_NAMES)
def test_starts_and_guess_have_the_parameter_shape(name: str) -> None:
    law = fitting.LAWS[name]
    _, frame = law.example(np.random.default_rng(2))
    opts = law.resolve(frame)
    prep = law.prepare(frame, **opts)
    n = len(law.parameters(None, **opts))
    assert law.guess(prep).shape == (n,)
    starts = law.starts(prep)
    assert starts.ndim == 2 and starts.shape[1] == n and np.isfinite(starts).all()
    described = law.describe()
    assert described["name"] == name and described["formula"] == law.formula


def test_chinchilla_grid_is_hoffmanns() -> None:
    law = fitting.LAWS["chinchilla"]
    _, frame = law.example(np.random.default_rng(0))
    starts = law.starts(law.prepare(frame))
    assert starts.shape == (4500, 5)
    assert sorted(set(np.round(np.log(starts[:, 1]), 9))) == [0, 5, 10, 15, 20, 25]
    assert sorted(set(starts[:, 3])) == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_parameter_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError):
        Parameter("x", 1.0, 0.5)
    with pytest.raises(ValueError):
        Parameter("x", 0.0, 1.0, log=True)


# -- what a law can do: declared on the law, checked here for every law ----------------------


def _schedule_of(frame: pd.DataFrame) -> Any:
    """A schedule the law's example ran with (any schedule for a law that takes none)."""
    if "schedule" not in frame.columns:
        return "cosine:peak=1e-3,total=1000"
    return frame["schedule"].dropna().iloc[0]


def _check_kl(law: Law, result: Any, frame: pd.DataFrame) -> None:
    out = analyses.kl_decomposition(result, frame)
    assert out["parameter"] == law.irreducible
    assert out["irreducible"] == result.params[law.irreducible]
    np.testing.assert_allclose(out["irreducible"] + out["reducible"], result.predict(frame))


def _check_size(law: Law, result: Any, frame: pd.DataFrame) -> None:
    out = analyses.size_for_reducible_loss(result, [0.2, 0.1, 0.05])
    assert np.isfinite(out["size"]).all() and (out["size"] > 0).all()
    assert (np.diff(out["size"]) > 0).all()  # a smaller reducible loss needs a bigger model
    assert out["variable"] in law.size_inputs(result.law_options) or out["variable"] == "params"


def _check_compute_optimal(law: Law, result: Any, frame: pd.DataFrame) -> None:
    budgets = np.array([1e19, 1e22])
    out = analyses.compute_optimal(result, budgets)
    np.testing.assert_allclose(6 * out["N_opt"] * out["D_opt"], budgets, rtol=1e-10)
    at = pd.DataFrame({"params": out["N_opt"], "tokens": out["D_opt"]})
    np.testing.assert_allclose(out["loss"], result.predict(at), rtol=1e-10)  # the law's loss


def _check_split(law: Law, result: Any, frame: pd.DataFrame) -> None:
    out = analyses.optimal_encoder_decoder_split(result, [1e8, 1e9])
    np.testing.assert_allclose(out["encoder_params"] + out["decoder_params"], [1e8, 1e9])
    at = pd.DataFrame({k: out[k] for k in ("encoder_params", "decoder_params")})
    np.testing.assert_allclose(out["loss"], result.predict(at), rtol=1e-10)


def _check_sampling(law: Law, result: Any, frame: pd.DataFrame) -> None:
    ratios = analyses.optimal_sampling_ratios(result)["ratios"]
    assert sum(ratios.values()) == pytest.approx(1.0)
    assert all(0.0 <= r <= 1.0 for r in ratios.values())


def _check_schedule(law: Law, result: Any, frame: pd.DataFrame) -> None:
    curve = analyses.schedule_curve(result, _schedule_of(frame))
    assert len(curve) > 0 and np.isfinite(curve["loss"]).all()
    assert (curve["lo"] <= curve["loss"]).all() and (curve["loss"] <= curve["hi"]).all()


def _check_one_more_epoch(law: Law, result: Any, frame: pd.DataFrame) -> None:
    out = analyses.loss_of_one_more_epoch(result, 1e8, 1e9, [1.0, 4.0, 40.0])
    np.testing.assert_allclose(out["loss"] - out["loss_next_epoch"], out["gain"])
    assert (out["gain"] > 0).all() and (np.diff(out["gain"]) < 0).all()  # diminishing returns
    at = pd.DataFrame({"params": 1e8, "tokens": [1e9, 4e9, 4e10], "unique_tokens": 1e9})
    np.testing.assert_allclose(out["loss"], result.predict(at), rtol=1e-12)
    assert (out["gain_lo"] <= out["gain"]).all() and (out["gain"] <= out["gain_hi"]).all()


def _check_optimal_epochs(law: Law, result: Any, frame: pd.DataFrame) -> None:
    budgets = np.array([1e19, 1e21])
    out = analyses.optimal_epochs(result, budgets, 1e9)
    np.testing.assert_allclose(6 * out["N_opt"] * out["D_opt"], budgets, rtol=1e-10)
    np.testing.assert_allclose(out["epochs"], out["D_opt"] / 1e9, rtol=1e-12)
    for factor in (0.8, 1.25):  # a minimum along the budget
        n = out["N_opt"] * factor
        at = pd.DataFrame({"params": n, "tokens": budgets / (6 * n), "unique_tokens": 1e9})
        assert (result.predict(at) > out["loss"]).all()


def _check_loss_for_error(law: Law, result: Any, frame: pd.DataFrame) -> None:
    targets = np.array([0.4, 0.5, 0.6])
    out = analyses.loss_for_error(result, targets)
    at = pd.DataFrame({"model_loss": out["model_loss"]})
    np.testing.assert_allclose(result.predict(at), targets, rtol=1e-10)  # the law, inverted
    assert (np.diff(out["model_loss"]) > 0).all()  # a lower error needs a lower loss
    assert (out["lo"] <= out["model_loss"]).all() and (out["model_loss"] <= out["hi"]).all()


def _check_extrapolation(law: Law, result: Any, frame: pd.DataFrame) -> None:
    out = analyses.extrapolation_test(law, frame)
    assert out["n_heldout"] >= 1 and np.isfinite(out["mean_rel_error"])


CHECKS: dict[str, Callable[[Law, Any, pd.DataFrame], None]] = {
    "kl_decomposition": _check_kl,
    "size_for_reducible_loss": _check_size,
    "compute_optimal": _check_compute_optimal,
    "optimal_encoder_decoder_split": _check_split,
    "optimal_sampling_ratios": _check_sampling,
    "schedule_curve": _check_schedule,
    "loss_of_one_more_epoch": _check_one_more_epoch,
    "optimal_epochs": _check_optimal_epochs,
    "loss_for_error": _check_loss_for_error,
    "extrapolation_test": _check_extrapolation,
}


def test_every_analysis_has_a_check() -> None:
    """A new analysis gets a line in CHECKS, so every law is tested against it."""
    assert set(analyses.__all__) == set(CHECKS)


@pytest.fixture(scope="module")
def fitted() -> dict[str, tuple[Any, pd.DataFrame]]:
    out = {}
    for name in LAW_NAMES:
        _, frame = fitting.LAWS[name].example(np.random.default_rng(0))
        out[name] = (fitting.fit(name, frame), frame)
    return out


@pytest.mark.parametrize("name", LAW_NAMES)
def test_declared_capabilities_are_true_of_the_law(name: str) -> None:
    law = fitting.LAWS[name]
    _, frame = law.example(np.random.default_rng(0))
    options = law.resolve(frame)
    params = [p.name for p in law.parameters(None, **options)]
    assert law.irreducible is None or law.irreducible in params
    assert law.analyses <= set(CHECKS) - {"extrapolation_test"}, law.analyses
    # An analysis that rests on a declared fact is declared exactly when the fact is.
    assert ("kl_decomposition" in law.analyses) == (law.irreducible is not None)
    assert ("schedule_curve" in law.analyses) == law.takes_schedule
    sizes = law.size_inputs(options)
    assert sizes and set(sizes) <= set(frame.columns), sizes
    if law.x_columns:  # the x option chooses the one size column
        assert sizes == (options["x"],) and options["x"] in law.x_columns
    else:
        assert sizes == law.sizes
    assert set(law.point_keys) <= set(law.inputs) & set(frame.columns)
    if law.takes_schedule:  # its example carries the schedule it was generated with
        assert "schedule" in frame.columns and frame["schedule"].notna().all()
    assert law.kind in ("points", "curves")


@pytest.mark.parametrize("analysis", sorted(CHECKS))
@pytest.mark.parametrize("name", LAW_NAMES)
def test_each_analysis_runs_exactly_on_the_laws_that_declare_it(
    name: str, analysis: str, fitted: dict[str, tuple[Any, pd.DataFrame]]
) -> None:
    law = fitting.LAWS[name]
    result, frame = fitted[name]
    if law.supports(analysis):
        CHECKS[analysis](law, result, frame)
        return
    with pytest.raises(FitError, match=re.escape(repr(name))):
        CHECKS[analysis](law, result, frame)


LAW_NAMED = re.compile(r"[\"'](" + "|".join(map(re.escape, LAW_NAMES)) + r")[\"']")
# The demo fits one particular law with that law's options: a choice, not a capability.
MAY_NAME_A_LAW = {"app/server/demo.py"}


def test_no_law_is_named_outside_its_own_module() -> None:
    """Adding a law is one module in fitting/laws/ plus a registry line: nothing else lists
    laws by name (the app, the analyses and the loader ask the law what it can do)."""
    named = [
        f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
        for top in ("app", "fitting", "store")
        for path in sorted((ROOT / top).rglob("*.py"))
        if not path.is_relative_to(ROOT / "fitting" / "laws")
        and str(path.relative_to(ROOT)) not in MAY_NAME_A_LAW
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if LAW_NAMED.search(line)
    ]
    assert named == []
