"""Gadre et al. 2024's loss-to-downstream-error law, Err(L) = eps - k exp(-gamma L), on
synthetic data of known truth: recovery, extrapolation to lower losses (the paper's use:
fit the small models, predict the big ones), the inverse analysis and its refusals.

/work/shared/data holds no downstream-error numbers of Gadre et al. (only their
validation losses), so there is no published-data test for this law."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fitting
from fitting import analyses
from fitting.errors import FitError

TRUTH = {"eps": 0.79, "k": 3.2, "gamma": 0.75}


def _errors(loss: np.ndarray, p: dict[str, float] = TRUTH) -> np.ndarray:
    return p["eps"] - p["k"] * np.exp(-p["gamma"] * loss)


def _frame(loss: np.ndarray, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    err = _errors(loss) * np.exp(rng.normal(0.0, noise, len(loss)))
    return pd.DataFrame(
        {"run": [f"m{i}" for i in range(len(loss))], "model_loss": loss, "loss": err}
    )


def test_exact_data_recover_the_parameters() -> None:
    result = fitting.fit("downstream_error", _frame(np.linspace(2.6, 5.2, 18)), bootstrap=0)
    for name, true in TRUTH.items():
        assert result.params[name] == pytest.approx(true, rel=1e-6)


def test_fit_on_high_losses_predicts_the_low_loss_models() -> None:
    """Gadre et al. fit on small (high-loss) models and predict the errors of larger ones."""
    small = _frame(np.linspace(3.4, 5.2, 16), noise=0.004, seed=3)
    result = fitting.fit("downstream_error", small, bootstrap=100, seed=1)
    big = pd.DataFrame({"model_loss": [2.6, 2.8, 3.0]})
    predicted = result.predict(big)
    np.testing.assert_allclose(predicted, _errors(big["model_loss"].to_numpy()), atol=0.02)
    lo, hi = result.predict_band(big)
    truth = _errors(big["model_loss"].to_numpy())
    assert ((lo <= truth) & (truth <= hi)).all()
    assert "rises_with" not in (result.checks or {})  # an error rising with the loss is right


def test_loss_for_error_inverts_the_law_with_an_interval() -> None:
    result = fitting.fit(
        "downstream_error", _frame(np.linspace(2.6, 5.2, 20), noise=0.004), bootstrap=100
    )
    out = analyses.loss_for_error(result, [0.45, 0.6])
    true = -np.log((TRUTH["eps"] - np.array([0.45, 0.6])) / TRUTH["k"]) / TRUTH["gamma"]
    np.testing.assert_allclose(out["model_loss"], true, atol=0.05)
    assert ((out["lo"] <= true) & (true <= out["hi"])).all()
    assert "bootstrap" in out["method"]
    with pytest.raises(FitError, match="below the fitted eps"):
        analyses.loss_for_error(result, [0.95])
    with pytest.raises(FitError, match="loss_for_error needs a fit of downstream_error"):
        analyses.loss_for_error(fitting.fit("power_law", _power_rows()), [0.5])


def _power_rows() -> pd.DataFrame:
    n = np.geomspace(1e6, 1e9, 8)
    return pd.DataFrame({"params": n, "loss": 2.0 + (1e5 / n) ** 0.3})


def test_missing_input_names_the_column() -> None:
    with pytest.raises(FitError, match="model_loss"):
        fitting.fit("downstream_error", pd.DataFrame({"params": [1.0, 2.0], "loss": [0.5, 0.4]}))


def test_cli_fits_a_table_of_errors(tmp_path: Path) -> None:
    """A table file: the error in the loss column, the model's loss as a run fact column."""
    from typer.testing import CliRunner

    from app.cli import cli

    loss = np.linspace(2.6, 5.2, 14)
    table = _frame(loss).assign(params=np.geomspace(1e9, 1e7, len(loss)).astype(int))
    path = tmp_path / "errors.csv"
    table.to_csv(path, index=False)
    out = CliRunner().invoke(
        cli, ["fit", "downstream_error", "--csv", str(path), "--bootstrap", "0", "--json"]
    )
    assert out.exit_code == 0, out.output
    import json

    params = json.loads(out.stdout)["params"]
    assert params["gamma"] == pytest.approx(TRUTH["gamma"], rel=1e-5)
