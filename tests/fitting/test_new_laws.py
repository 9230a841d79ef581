"""What each of the laws added for issue 14 says, beyond the generic registry test:
data_constrained (Muennighoff et al. 2023), overtrained (Gadre et al. 2024), downstream and
downstream_score (Isik et al. 2024), broken_power_law (Caballero et al. 2022)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fitting
from fitting import analyses
from fitting.errors import FitError

CHINCHILLA = ("E", "A", "B", "alpha", "beta")


def law_predict(name: str, params: dict[str, float], frame: pd.DataFrame, **opts) -> np.ndarray:
    law = fitting.LAWS[name]
    opts = law.resolve(frame, **opts)
    theta = np.array([[params[p.name] for p in law.parameters(None, **opts)]])
    return law.predict(theta, law.prepare(frame, for_fit=False, **opts))[0]


# --- data_constrained ---------------------------------------------------------------------

MUENNIGHOFF = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.353, "beta": 0.353}
MUENNIGHOFF |= {"R_D": 15.4, "R_N": 5.3}


def test_data_constrained_is_chinchilla_on_fresh_data() -> None:
    """One epoch (or less) of unique data and a model no larger than the data can use:
    D' = D and N' = N, so the law is Chinchilla's."""
    frame = pd.DataFrame({"params": [1e7, 3e7, 1e8], "tokens": [1e10, 5e9, 2e10]})
    frame["unique_tokens"] = frame["tokens"] * 2  # more unique tokens than seen
    chin = {k: MUENNIGHOFF[k] for k in CHINCHILLA}
    np.testing.assert_allclose(
        law_predict("data_constrained", MUENNIGHOFF, frame),
        law_predict("chinchilla", chin, frame),
        rtol=1e-12,
    )


def test_repeated_tokens_are_worth_less_and_saturate() -> None:
    law = fitting.LAWS["data_constrained"]
    n, u = np.array([1e7]), np.array([1e9])  # a model the unique data can use fully
    epochs = np.array([1.0, 2.0, 4.0, 16.0, 64.0, 1e4])
    loss = law.epochs_loss(MUENNIGHOFF, np.repeat(n, 6), np.repeat(u, 6), epochs)
    assert (np.diff(loss) < 0).all()  # more epochs still help...
    fresh = law_predict(
        "data_constrained",
        MUENNIGHOFF,
        pd.DataFrame({"params": n, "tokens": 4 * u, "unique_tokens": 4 * u}),
    )
    assert loss[2] > fresh[0]  # ...but 4 epochs of U are worth less than 4U fresh tokens
    assert loss[2] - fresh[0] < 0.02  # and only a little less (Muennighoff et al.: ~4 epochs)
    # D' saturates at U (1 + R_D*): the loss of infinitely many epochs.
    limit = law_predict(
        "data_constrained",
        MUENNIGHOFF,
        pd.DataFrame({"params": n, "tokens": u * (1 + 15.4), "unique_tokens": u * (1 + 15.4)}),
    )
    assert loss[-1] == pytest.approx(limit[0], rel=1e-6)


def test_epoch_analyses_on_a_fit() -> None:
    law = fitting.LAWS["data_constrained"]
    _, frame = law.example(np.random.default_rng(0))
    result = fitting.fit("data_constrained", frame)
    more = analyses.loss_of_one_more_epoch(result, 1e8, 1e9, [1.0, 4.0, 40.0])
    assert more["gain"][0] > 10 * more["gain"][2] > 0  # the 41st epoch is worth little
    best = analyses.optimal_epochs(result, [1e18, 1e21], 1e10)
    # With little compute the unique data are not even used once; with much, many epochs.
    assert best["epochs"][0] < 1 < best["epochs"][1]
    lo, hi = best["epochs_lo"][1], best["epochs_hi"][1]
    assert lo < best["epochs"][1] < hi
    with pytest.raises(FitError, match="FLOP budget too small"):
        analyses.optimal_epochs(result, 1e3, 1e9)


# --- overtrained --------------------------------------------------------------------------


def test_overtrained_is_chinchilla_with_one_exponent() -> None:
    p = {"E": 1.9, "a": 60.0, "b": 400.0, "eta": 0.15}
    chin = {"E": 1.9, "A": 60.0 * 6**-0.15, "B": 400.0 * 6**-0.15, "alpha": 0.3, "beta": 0.3}
    frame = pd.DataFrame({"params": [1e7, 1e8, 1e9], "tokens": [1e9, 4e10, 2e10]})
    np.testing.assert_allclose(
        law_predict("overtrained", p, frame), law_predict("chinchilla", chin, frame), rtol=1e-12
    )
    n, d, _ = fitting.LAWS["overtrained"].compute_optimum(p, np.array([1e20, 1e23]))
    np.testing.assert_allclose(d / n, (400.0 / 60.0) ** (1 / 0.3))  # the same M* everywhere


def test_overtrained_loss_is_a_power_law_in_compute_at_fixed_ratio() -> None:
    p = {"E": 1.9, "a": 60.0, "b": 400.0, "eta": 0.15}
    c = np.geomspace(1e18, 1e23, 6)
    m = 160.0
    n = np.sqrt(c / (6 * m))
    reducible = law_predict("overtrained", p, pd.DataFrame({"params": n, "tokens": m * n})) - 1.9
    slopes = np.diff(np.log(reducible)) / np.diff(np.log(c))
    np.testing.assert_allclose(slopes, -0.15, rtol=1e-10)


# --- downstream ---------------------------------------------------------------------------


def test_downstream_cross_entropy_matches_a_power_law_in_tokens() -> None:
    _, frame = fitting.LAWS["downstream"].example(np.random.default_rng(0))
    down = fitting.fit("downstream", frame)
    plain = fitting.fit("power_law", frame, x="tokens")
    assert down.params["E"] == pytest.approx(plain.params["L_inf"], rel=1e-4)
    assert down.params["alpha"] == pytest.approx(plain.params["alpha"], rel=1e-4)
    np.testing.assert_allclose(down.predict(frame), plain.predict(frame), rtol=1e-5)


def test_downstream_score_is_the_log_law() -> None:
    p = {"A": np.exp(-8.0), "alpha": 0.5, "beta": 2.2}
    d = np.array([1e8, 1e10, 1e12])
    expected = (np.log(p["A"] * d ** p["alpha"])) ** p["beta"]
    np.testing.assert_allclose(
        law_predict("downstream_score", p, pd.DataFrame({"tokens": d})), expected, rtol=1e-12
    )
    _, frame = fitting.LAWS["downstream_score"].example(np.random.default_rng(0))
    result = fitting.fit("downstream_score", frame)
    assert result.converged and result.doubts() == []  # rising is what a score does
    later = result.predict(pd.DataFrame({"tokens": [1e12]}))[0]
    assert later > frame["loss"].max()  # a score rises with pretraining data


# --- broken_power_law ---------------------------------------------------------------------


def test_broken_power_law_slopes_on_either_side_of_the_break() -> None:
    p = {"a": 1.5, "b": 8.0, "c0": 0.1, "c1": 0.4, "d1": 1e6, "f1": 0.5}
    x = np.array([1.0, 1.01, 1e12, 1.01e12])
    reducible = law_predict("broken_power_law", p, pd.DataFrame({"params": x})) - 1.5
    slope_low = np.log(reducible[1] / reducible[0]) / np.log(1.01)
    slope_high = np.log(reducible[3] / reducible[2]) / np.log(1.01)
    assert slope_low == pytest.approx(-0.1, abs=1e-3)
    assert slope_high == pytest.approx(-0.5, abs=1e-3)


def test_broken_power_law_takes_the_x_option() -> None:
    _, frame = fitting.LAWS["broken_power_law"].example(np.random.default_rng(0))
    steps = frame.rename(columns={"params": "step"})
    result = fitting.fit("broken_power_law", steps, x="step")
    assert result.options["x"] == "step"
    with pytest.raises(FitError, match="x must be one of"):
        fitting.fit("broken_power_law", frame, x="width")
