"""One generic test of the Law contract over every registered law (scikit-learn style)."""

from __future__ import annotations

import numpy as np
import pytest

import fitting
from fitting.laws.base import Law, Parameter

LAW_NAMES = sorted(fitting.LAWS)


def test_registry_has_the_public_laws() -> None:
    for name in ("power_law", "chinchilla", "kaplan", "nmt", "multilingual"):
        assert name in fitting.LAWS
    for name, law in fitting.LAWS.items():
        assert law.name == name and isinstance(law, Law)
        assert law.formula and law.description and law.kind in ("points", "curves")


def test_public_parameter_names() -> None:
    names = {
        n: [p.name for p in fitting.LAWS[n].parameters(None)]
        for n in ("power_law", "chinchilla", "kaplan", "nmt")
    }
    assert names == {
        "power_law": ["L_inf", "x0", "alpha"],
        "chinchilla": ["E", "A", "B", "alpha", "beta"],
        "kaplan": ["N_c", "D_c", "alpha_N", "alpha_D"],
        "nmt": ["alpha", "p_e", "p_d", "L_inf"],
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
