"""Derived analyses against their closed forms and brute-force optima."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

import fitting
from fitting.analyses import (
    compute_optimal,
    extrapolation_test,
    kl_decomposition,
    optimal_encoder_decoder_split,
    optimal_sampling_ratios,
    size_for_reducible_loss,
)
from fitting.errors import FitError


def _fit(name: str, **options):
    law = fitting.LAWS[name]
    _, frame = law.example(np.random.default_rng(0))
    return fitting.fit(name, frame, **options), frame


@pytest.fixture(scope="module")
def chin():
    return _fit("chinchilla")


@pytest.fixture(scope="module")
def power():
    return _fit("power_law")


def test_kl_parts_add_up(power) -> None:
    result, frame = power
    out = kl_decomposition(result, frame)
    assert out["parameter"] == "L_inf"
    assert out["irreducible"] == result.params["L_inf"]
    np.testing.assert_allclose(out["irreducible"] + out["reducible"], result.predict(frame))
    assert np.all(out["reducible"] > 0) and np.all(out["reducible_fraction"] < 1)
    assert np.all(out["reducible_lo"] <= out["reducible"])
    assert np.all(out["reducible"] <= out["reducible_hi"])
    lo, hi = out["irreducible_interval"]
    assert lo < out["irreducible"] < hi


def test_kl_needs_an_irreducible_term() -> None:
    result, _ = _fit("kaplan")
    with pytest.raises(FitError, match="irreducible"):
        kl_decomposition(result)


def test_size_for_reducible_loss_closed_form(power, chin) -> None:
    result, _ = power
    out = size_for_reducible_loss(result, [0.1, 0.05])
    p = result.params
    np.testing.assert_allclose(out["size"], p["x0"] * np.array([0.1, 0.05]) ** (-1 / p["alpha"]))
    pred = result.predict(pd.DataFrame({"params": out["size"]}))
    np.testing.assert_allclose(pred - p["L_inf"], [0.1, 0.05], rtol=1e-10)
    assert np.all(out["lo"] < out["size"]) and np.all(out["size"] < out["hi"])
    res_c, _ = chin
    n = size_for_reducible_loss(res_c, 0.2)["size"][0]
    assert res_c.params["A"] / n ** res_c.params["alpha"] == pytest.approx(0.2)
    with pytest.raises(FitError, match="positive"):
        size_for_reducible_loss(result, -1.0)


def _brute_optimum(law_loss, c: float) -> float:
    """N minimising the loss along C = 6 N D, by a fine search in log N."""
    grid = np.linspace(np.log(1e3), np.log(c / 6 / 1e3), 20001)
    losses = law_loss(np.exp(grid), c / (6 * np.exp(grid)))
    i = int(np.argmin(losses))
    res = minimize(
        lambda x: law_loss(np.exp(x), c / (6 * np.exp(x)))[0],
        [grid[i]],
        method="Nelder-Mead",
        options={"xatol": 1e-12, "fatol": 1e-15},
    )
    return float(np.exp(res.x[0]))


def test_compute_optimal_matches_brute_force(chin) -> None:
    result, _ = chin
    p = result.params
    budgets = np.array([1e20, 1e23])
    out = compute_optimal(result, budgets)
    np.testing.assert_allclose(6 * out["N_opt"] * out["D_opt"], budgets, rtol=1e-12)

    def loss(n, d):
        return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]

    for i, c in enumerate(budgets):
        assert out["N_opt"][i] == pytest.approx(_brute_optimum(loss, c), rel=1e-4)
        assert out["N_opt_lo"][i] < out["N_opt"][i] < out["N_opt_hi"][i]
    a = p["beta"] / (p["alpha"] + p["beta"])
    assert out["N_opt"][1] / out["N_opt"][0] == pytest.approx(1000**a, rel=1e-10)
    np.testing.assert_allclose(out["tokens_per_param"], out["D_opt"] / out["N_opt"])


def test_kaplan_compute_optimal_by_search() -> None:
    result, _ = _fit("kaplan")
    p = result.params
    out = compute_optimal(result, 1e21)

    def loss(n, d):
        return ((p["N_c"] / n) ** (p["alpha_N"] / p["alpha_D"]) + p["D_c"] / d) ** p["alpha_D"]

    assert out["N_opt"][0] == pytest.approx(_brute_optimum(loss, 1e21), rel=1e-4)


def test_encoder_decoder_split_closed_form() -> None:
    result, _ = _fit("nmt")
    p, opts = result.params, result.law_options
    out = optimal_encoder_decoder_split(result, 5e8)
    assert out["encoder_params"][0] / out["decoder_params"][0] == pytest.approx(p["p_e"] / p["p_d"])
    frac = np.linspace(0.01, 0.99, 9801)
    ne, nd = 5e8 * frac, 5e8 * (1 - frac)
    loss = p["alpha"] * (opts["Ne_ref"] / ne) ** p["p_e"] * (opts["Nd_ref"] / nd) ** p["p_d"]
    assert out["encoder_fraction"][0] == pytest.approx(frac[np.argmin(loss)], abs=2e-4)
    assert out["loss"][0] == pytest.approx(float(np.min(loss)) + p["L_inf"], rel=1e-6)
    pred = result.predict(
        pd.DataFrame(
            {"encoder_params": out["encoder_params"], "decoder_params": out["decoder_params"]}
        )
    )
    assert pred[0] == pytest.approx(out["loss"][0])


def test_sampling_ratios_match_closed_form_and_numeric() -> None:
    result, _ = _fit("multilingual")
    out = optimal_sampling_ratios(result, {"en": 1.0, "zh": 2.0})
    ratios = out["ratios"]
    assert sum(ratios.values()) == pytest.approx(1.0)
    p = result.params
    g = np.array([p["en.gamma"], p["zh.gamma"]])
    w = np.array([1.0, 2.0])

    def objective(x):
        q = np.array([x[0], 1 - x[0]])
        return float(np.sum(w * q**-g))

    best = minimize(
        objective,
        [0.5],
        bounds=[(1e-6, 1 - 1e-6)],
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-12},
    )
    assert ratios["en"] == pytest.approx(best.x[0], abs=1e-5)
    for fam, (lo, hi) in out["intervals"].items():
        assert lo <= ratios[fam] <= hi
    # Equal gammas: p_i proportional to (w_i c_i)^(1/(1+gamma)).
    same = fitting.FitResult.from_json(result.to_json())
    same.params["zh.gamma"] = same.params["en.gamma"]
    eq = optimal_sampling_ratios(same, {"en": 1.0, "zh": 3.0})["ratios"]
    gamma = same.params["en.gamma"]
    assert eq["zh"] / eq["en"] == pytest.approx(3.0 ** (1 / (1 + gamma)), rel=1e-9)
    with pytest.raises(FitError, match="unknown family"):
        optimal_sampling_ratios(result, {"xx": 1.0})


def test_extrapolation_test_scores_the_largest_scale(chin) -> None:
    _, frame = chin
    out = extrapolation_test("chinchilla", frame)
    assert out["n_heldout"] >= 1 and out["n_train"] + out["n_heldout"] == len(frame)
    assert out["mean_rel_error"] < 0.02
    with pytest.raises(FitError, match="holdout_factor"):
        extrapolation_test("chinchilla", frame, holdout_factor=0.5)


def test_analyses_reject_the_wrong_law(power) -> None:
    result, _ = power
    with pytest.raises(FitError, match="chinchilla"):
        compute_optimal(result, 1e21)
    with pytest.raises(FitError, match="nmt"):
        optimal_encoder_decoder_split(result, 1e9)
