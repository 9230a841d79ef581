"""The engine on the published Chinchilla points (Besiroglu et al. 2024 replication)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fitting
from fitting.engine import get_law, make_problem

# Besiroglu et al. 2024, Table 1 (estimate, standard error).
BESIROGLU = {
    "E": (1.817, 0.026),
    "A": (482.0, 124.5),
    "B": (2085.0, 1293.0),
    "alpha": (0.3478, 0.015),
    "beta": (0.3658, 0.021),
}
HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def test_fit_is_consistent_with_besiroglu(chinchilla: pd.DataFrame, chinchilla_fit) -> None:
    assert len(chinchilla) == 240 and chinchilla_fit.n_points == 240
    for name, (value, se) in BESIROGLU.items():
        assert abs(chinchilla_fit.params[name] - value) <= 2 * se, name
    p = chinchilla_fit.params
    a = p["beta"] / (p["alpha"] + p["beta"])
    assert abs(a - 0.513) <= 0.020


def test_hoffmann_estimate_is_clearly_worse(chinchilla: pd.DataFrame, chinchilla_fit) -> None:
    problem, _, _ = make_problem(get_law("chinchilla"), chinchilla, {})
    theta = np.array([[HOFFMANN[n] for n in problem.names]])
    hoffmann = float(problem.objective(problem.to_z(theta))[0])
    assert hoffmann > 1.5 * chinchilla_fit.objective


def test_optimum_is_global_on_the_grid(chinchilla: pd.DataFrame, chinchilla_fit) -> None:
    """No grid start polished on its own does better than the engine's optimum."""
    from fitting.optimize import polish

    problem, _, _ = make_problem(get_law("chinchilla"), chinchilla, {})
    starts = problem.to_z(get_law("chinchilla").starts(problem.prep))
    rng = np.random.default_rng(0)
    for i in rng.choice(len(starts), 10, replace=False):
        _, obj = polish(problem, starts[i])
        assert obj >= chinchilla_fit.objective * (1 - 1e-6)


def test_refitting_is_idempotent(chinchilla: pd.DataFrame, chinchilla_fit) -> None:
    again = fitting.fit("chinchilla", chinchilla.sample(frac=1.0, random_state=3))
    same = fitting.fit("chinchilla", chinchilla)
    assert same.params == chinchilla_fit.params
    assert same.objective == chinchilla_fit.objective
    assert same.data_hash == chinchilla_fit.data_hash
    for name, value in again.params.items():
        assert abs(value / chinchilla_fit.params[name] - 1) < 1e-5


def test_report_and_json(chinchilla_fit) -> None:
    text = chinchilla_fit.report()
    assert "chinchilla" in text and "alpha" in text and "AIC" in text
    assert chinchilla_fit.summary().startswith("chinchilla: E=1.817")
    back = fitting.FitResult.from_json(chinchilla_fit.to_json())
    assert back == chinchilla_fit
    assert back.to_json() == chinchilla_fit.to_json()


def test_bootstrap_spread_matches_besiroglus_standard_errors(chinchilla: pd.DataFrame) -> None:
    """Resampling the 240 points gives standard errors of Besiroglu et al.'s order."""
    result = fitting.fit("chinchilla", chinchilla, bootstrap=200, resample="points", seed=1)
    samples = np.asarray(result.bootstrap_samples)
    names = list(result.params)
    for name in BESIROGLU:
        spread = float(np.std(samples[:, names.index(name)], ddof=1))
        assert result.checks["bootstrap_stderr"][name] == pytest.approx(spread)
        assert 0.6 < spread / BESIROGLU[name][1] < 1.6, (name, spread)
        lo, hi = result.intervals[name]
        assert lo < result.params[name] < hi
